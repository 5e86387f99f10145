// Bounded waits (wait.h).
#include "support/wait.h"

#include <thread>

namespace support {

bool eventually(const std::function<bool()>& check, Millis timeout, Millis interval) {
  const auto deadline = Clock::now() + timeout;
  while (!check()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);  // bounded by the deadline; nothing announces these
  }
  return true;
}

}  // namespace support

// Bounded waits (wait.h).
#include "support/wait.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <thread>

namespace support {

int remaining_ms(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<Millis>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

int wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int n = ::poll(&pfd, 1, remaining_ms(deadline));
    if (n > 0) return 1;
    if (n == 0 && Clock::now() >= deadline) return 0;
    if (n < 0 && errno != EINTR) return -1;
  }
}

bool eventually(const std::function<bool()>& check, Millis timeout, Millis interval) {
  const auto deadline = Clock::now() + timeout;
  while (!check()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);  // bounded by the deadline; nothing announces these
  }
  return true;
}

}  // namespace support

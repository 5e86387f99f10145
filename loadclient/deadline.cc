// Waiting on an fd with a deadline (deadline.h).
#include "deadline.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace load {

int remaining_ms(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
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

}  // namespace load

// Waiting on an fd with a deadline rather than a timeout, so that a request
// made of several steps (connect, send, receive) is bounded as a whole.
#pragma once

#include <chrono>

namespace load {

using Clock = std::chrono::steady_clock;

/// Milliseconds left until `deadline`, rounded up so poll() never spins at 0.
int remaining_ms(Clock::time_point deadline);

/// Waits for `events` on `fd` until `deadline`: 1 ready, 0 timed out, -1 error (errno set).
int wait_fd(int fd, short events, Clock::time_point deadline);

}  // namespace load

// Bounded waits: for an fd to become ready before a deadline, and for a
// condition that no event announces.
#pragma once

#include <chrono>
#include <functional>

namespace support {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

/// Milliseconds left until `deadline`, rounded up so poll() never spins at 0.
int remaining_ms(Clock::time_point deadline);

/// Waits for `events` on `fd` until `deadline`: 1 ready, 0 timed out, -1 error (errno set).
int wait_fd(int fd, short events, Clock::time_point deadline);

/// Checks `check` every `interval` until it holds (true) or `timeout` has
/// passed (false), for conditions that no event announces (another
/// process's state).
bool eventually(const std::function<bool()>& check, Millis timeout = 10s, Millis interval = 10ms);

}  // namespace support

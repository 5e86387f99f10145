// Bounded waits: for an fd to become ready before a deadline, and for a
// condition that no event announces.
#pragma once

#include <chrono>
#include <functional>

#include "deadline.h"

namespace support {

using Clock = load::Clock;
using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

// The load client's deadline waits: remaining_ms(deadline) and
// wait_fd(fd, events, deadline).
using load::remaining_ms;
using load::wait_fd;

/// Checks `check` every `interval` until it holds (true) or `timeout` has
/// passed (false), for conditions that no event announces (another
/// process's state).
bool eventually(const std::function<bool()>& check, Millis timeout = 10s, Millis interval = 10ms);

}  // namespace support

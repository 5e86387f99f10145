// The libuv loop the unit tests run real handles on (probe_test.cc,
// command_runner_test.cc): every wait bounded, and every handle checked to be
// closed when the test ends.
#pragma once

#include <doctest/doctest.h>
#include <uv.h>

#include <functional>

#include "duration.h"
#include "os.h"

namespace test_loop {

using baton::Clock;
using baton::Millis;

/// The longest a test waits for anything.
inline constexpr Millis kLimit{5000};

/// A loop for one test. run_until() turns it until a condition holds or a
/// limit passes (an unreferenced 10 ms tick bounds each turn); at the end
/// every handle must have been closed (so every process a test started was
/// reaped).
class TestLoop {
 public:
  TestLoop() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &tick_);
    uv_timer_start(
        &tick_, [](uv_timer_t*) noexcept {}, 10, 10);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tick_));
  }
  ~TestLoop() {
    CHECK(run_until([&] { return !uv_loop_alive(&loop_); }));
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop_) == 0);
  }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;

  uv_loop_t* get() { return &loop_; }

  bool run_until(const std::function<bool()>& condition, Millis limit = kLimit) {
    auto deadline = Clock::now() + limit;
    while (!condition()) {
      if (Clock::now() >= deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

 private:
  uv_loop_t loop_{};
  uv_timer_t tick_{};
};

}  // namespace test_loop

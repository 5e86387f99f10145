// Unit tests for LogThrottle.
#include <doctest/doctest.h>

#include "log_throttle.h"

TEST_CASE("log throttle: one line per interval, then how many were held back") {
  using namespace std::chrono_literals;
  baton::LogThrottle throttle(10s);
  auto t0 = baton::LogThrottle::Clock::time_point{} + 1h;
  CHECK(throttle.allow(t0) == std::optional<std::string>(""));
  CHECK_FALSE(throttle.allow(t0 + 1s));
  CHECK_FALSE(throttle.allow(t0 + 9s));
  CHECK(throttle.allow(t0 + 10s) == std::optional<std::string>(" (and 2 more like it)"));
  CHECK(throttle.allow(t0 + 25s) == std::optional<std::string>(""));
}

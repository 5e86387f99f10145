// LogThrottle: keeps a message that a local process can provoke at will (a
// foreign notify sender, an oversized datagram, a flood of control clients)
// from flooding baton's log: at most one line per interval, and the next
// line says how many were held back.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace baton {

class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogThrottle(std::chrono::milliseconds interval = std::chrono::seconds(10))
      : interval_(interval) {}

  /// Whether to log now. When yes, the text to append: empty, or
  /// " (and N more like it)" for the lines held back since the last one.
  std::optional<std::string> allow(Clock::time_point now = Clock::now()) {
    if (logged_once_ && now - last_ < interval_) {
      ++held_back_;
      return std::nullopt;
    }
    std::string note = held_back_ ? fmt::format(" (and {} more like it)", held_back_) : "";
    logged_once_ = true;
    last_ = now;
    held_back_ = 0;
    return note;
  }

 private:
  std::chrono::milliseconds interval_;
  Clock::time_point last_{};
  bool logged_once_ = false;
  /// Lines suppressed since the last one logged.
  uint64_t held_back_ = 0;
};

}  // namespace baton

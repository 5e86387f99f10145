// Parsing and formatting of human-readable durations.
#include "duration.h"

#include <fmt/format.h>
#include <cmath>

namespace baton {
namespace {

/// Microseconds in one `unit`, or 0 when the unit is unknown.
double unit_micros(std::string_view unit) {
  if (unit == "us") return 1;
  if (unit == "ms") return 1e3;
  if (unit == "s") return 1e6;
  if (unit == "m" || unit == "min") return 60e6;
  if (unit == "h") return 3600e6;
  return 0;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z');
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return error(fmt::format("invalid duration \"{}\": {} (write e.g. \"500ms\", \"30s\", \"2m\")",
                             text, why));
  };
  if (text.empty()) return bad("empty");
  // Summed in whole microseconds: a decimal like 16.1s is not exact in
  // binary (16.1 * 1e6 = 16100000.000000002), and summing doubles then
  // rounding up to milliseconds would make it 16101ms.
  constexpr double kYearMicros = 365.0 * 24 * 3600e6;
  int64_t micros = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (is_digit(text[i]) || text[i] == '.')) ++i;
    if (i == start) return bad("expected a number");
    std::string number(text.substr(start, i - start));
    size_t unit_start = i;
    while (i < text.size() && is_alpha(text[i])) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) return bad("missing unit");
    double scale = unit_micros(unit);
    if (scale == 0) return bad(fmt::format("unknown unit \"{}\"", unit));
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size()) return bad("malformed number");
    double term = value * scale;
    if (term > kYearMicros || static_cast<double>(micros) + term > kYearMicros) {
      return bad("longer than a year");
    }
    micros += std::llround(term);
  }
  return Millis((micros + 999) / 1000);  // a partial millisecond counts as one
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms < 0) return "-" + format_duration(Millis(-ms));
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) {
    if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
    return fmt::format("{:.1f}s", ms / 1000.0);
  }
  int64_t s = ms / 1000;
  if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
  return fmt::format("{}h{}m", s / 3600, (s % 3600) / 60);
}

}  // namespace baton

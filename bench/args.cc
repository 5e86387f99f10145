// Command-line value parsing for the bench programs (see args.h).
#include "args.h"

namespace bench {

std::optional<Millis> parse_duration(const std::string& text) {
  const size_t digits = text.find_first_not_of("0123456789");
  const std::string number = text.substr(0, digits);
  const std::string unit = digits == std::string::npos ? "s" : text.substr(digits);
  if (number.empty() || number.size() > 6) return std::nullopt;
  const long value = std::stol(number);
  if (unit == "ms") return Millis(value);
  if (unit == "s") return Millis(value * 1000);
  if (unit == "m") return Millis(value * 60000);
  return std::nullopt;
}

std::optional<int> parse_int(const std::string& text, int lo, int hi) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const int value = std::stoi(text);
  if (value < lo || value > hi) return std::nullopt;
  return value;
}

}  // namespace bench

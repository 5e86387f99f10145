// Durations as people write them in configs and on the command line:
// "500ms", "30s", "2m", "1m30s", "1.5s". A bare number is refused, because
// "30" could mean seconds or milliseconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "result.h"

namespace baton {

using Millis = std::chrono::milliseconds;

/// Parses a duration with units us, ms, s, m, h (summed: "1m30s").
/// Sub-millisecond remainders are rounded up so "1us" is not zero.
Result<Millis> parse_duration(std::string_view text);

/// Formats a duration compactly for people: "850ms", "2.5s", "3m12s", "2h5m".
std::string format_duration(Millis d);

}  // namespace baton

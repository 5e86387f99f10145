// Command-line value parsing shared by the bench programs (reload_bench,
// soak): durations such as "500ms", "12s", "1m" and bounded integers. Both
// return nullopt on anything malformed or out of range; the caller prints
// the usage.
#pragma once

#include <optional>
#include <string>

#include "support/wait.h"

namespace bench {

using support::Millis;

/// "500ms", "12s", "1m"; a bare number is seconds.
std::optional<Millis> parse_duration(const std::string& text);

/// A decimal integer in [lo, hi] (at most 6 digits, no sign).
std::optional<int> parse_int(const std::string& text, int lo, int hi);

}  // namespace bench

// libFuzzer target: durations ("500ms", "1m30s") as written in configs and
// on the command line, and format_duration of what they parse to. What
// format_duration prints (in status and messages) must parse back to about
// the same duration.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "duration.h"

namespace {

/// How much format_duration may round `d` away: it prints tenths of a
/// second below a minute, whole seconds below an hour, whole minutes above.
int64_t format_precision(baton::Millis d) {
  if (d.count() < 1000) return 0;
  if (d.count() < 60'000) return 50;
  if (d.count() < 3'600'000) return 1000;
  return 60'000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = baton::parse_duration(text);
  if (!d.ok()) {
    if (d.error().message.empty()) __builtin_trap();
    return 0;
  }
  if (d->count() < 0) __builtin_trap();  // no unit or sign makes a negative duration
  std::string shown = baton::format_duration(*d);
  auto again = baton::parse_duration(shown);
  if (!again.ok()) __builtin_trap();
  int64_t diff = again->count() - d->count();
  if (diff < 0) diff = -diff;
  if (diff > format_precision(*d)) __builtin_trap();
  return 0;
}

// libFuzzer target: config files. Any text, valid TOML or not, must come back
// from parse_config as a Config or as an error message; it must never throw
// (toml++ parse errors are turned into values at the edge) or crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // A relative path, so relative command, control and unix socket paths are
  // resolved against a base directory too.
  auto config = baton::parse_config(text, "fuzz/baton.toml");
  if (config.ok()) {
    // A config that parsed is one baton would run: every socket in it has a
    // name and an address it can print.
    for (const baton::SocketSpec& s : config->sockets) {
      if (s.name.empty() || s.address().empty()) __builtin_trap();
    }
  } else if (config.error().message.empty()) {
    __builtin_trap();  // every refusal says why
  }
  return 0;
}

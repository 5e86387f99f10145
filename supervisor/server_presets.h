// Presets for servers with a graceful-stop signal of their own
// (`server = "nginx"`): what baton must send to drain them. docs/servers.md
// has the recipe for each.
#pragma once

#include <string_view>
#include <vector>

namespace baton {

struct ServerPreset {
  std::string_view name;
  /// The signal that makes the server stop accepting, finish what it has
  /// and exit (baton's drain_signal).
  int drain_signal;
  /// Why: the server's own name for that signal.
  std::string_view why;
  /// The server takes the listeners it inherits to be non-blocking, so its
  /// sockets default to `nonblocking = true`.
  bool nonblocking = false;
};

/// The preset called `name`, or nullptr.
const ServerPreset* find_server_preset(std::string_view name);

/// Every preset, in the order docs/servers.md lists them.
const std::vector<ServerPreset>& server_presets();

}  // namespace baton

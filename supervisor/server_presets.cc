#include "server_presets.h"

#include <csignal>

namespace baton {

const std::vector<ServerPreset>& server_presets() {
  static const std::vector<ServerPreset> presets = {
      {"nginx", SIGQUIT, "SIGQUIT is nginx's graceful shutdown"},
      {"apache2", SIGWINCH, "SIGWINCH is apache2's graceful-stop"},
      {"haproxy", SIGUSR1, "SIGUSR1 is haproxy's soft-stop"},
      {"lighttpd", SIGINT, "SIGINT is lighttpd's graceful shutdown"},
  };
  return presets;
}

const ServerPreset* find_server_preset(std::string_view name) {
  for (const ServerPreset& p : server_presets())
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace baton

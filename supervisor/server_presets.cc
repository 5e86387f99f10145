#include "server_presets.h"

#include <csignal>

namespace baton {

const std::vector<ServerPreset>& server_presets() {
  // Each verified under baton (tests/servers): a request in progress at the
  // drain is answered and the server exits 0; SIGTERM ends that request.
  static const std::vector<ServerPreset> presets = {
      {"uwsgi", SIGHUP,
       "SIGHUP is uWSGI's graceful reload, an exit with --exit-on-reload (SIGTERM is its "
       "brutal reload)"},
      // nginx sets O_NONBLOCK only on listeners it opens itself, not on
      // inherited ones (its binary upgrade passes non-blocking ones).
      {"nginx", SIGQUIT, "SIGQUIT is nginx's graceful shutdown (SIGTERM its fast one)", true},
      {"haproxy", SIGUSR1, "SIGUSR1 is haproxy's soft stop (SIGTERM its hard stop)"},
      {"lighttpd", SIGINT,
       "SIGINT is lighttpd's graceful shutdown (SIGTERM stops it at once, SIGUSR1 restarts it)"},
      {"apache2", SIGWINCH,
       "SIGWINCH is apache2's graceful-stop (SIGTERM stops it at once, SIGUSR1 and SIGHUP "
       "restart it)"},
  };
  return presets;
}

const ServerPreset* find_server_preset(std::string_view name) {
  for (const ServerPreset& p : server_presets())
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace baton

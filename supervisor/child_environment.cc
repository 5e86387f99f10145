#include "child_environment.h"

#include <unistd.h>

#include <fmt/format.h>

#include "environment.h"

namespace baton {

std::vector<std::string> child_environment(const std::vector<std::string>& base,
                                           const Config& config, size_t socket_count,
                                           const std::string& notify_socket,
                                           const AppProtocol& protocol, InstanceIdentity who) {
  Environment env(base);
  for (const auto& [key, value] : config.environment) env.set(key, value);
  std::vector<std::string> names;
  for (const SocketSpec& s : config.sockets) names.push_back(s.name);
  env.set("LISTEN_FDS", std::to_string(socket_count));
  env.set("LISTEN_FDNAMES", fmt::format("{}", fmt::join(names, ":")));
  env.set("NOTIFY_SOCKET", notify_socket);
  env.set("BATON_SERVICE", config.name);
  env.set("BATON_PID", std::to_string(getpid()));
  env.set("BATON_GENERATION", std::to_string(who.generation));
  env.set("BATON_INSTANCE", std::to_string(who.instance));
  protocol.add_environment(config, env);
  if (config.watchdog_sec.count() > 0) {
    env.set("WATCHDOG_USEC", std::to_string(config.watchdog_sec.count() * 1000));
  }
  return env.entries();
}

}  // namespace baton

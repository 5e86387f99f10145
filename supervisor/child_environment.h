// The environment an instance of a generation starts with.
#pragma once

#include <string>
#include <vector>

#include "app_protocol.h"
#include "config.h"

namespace baton {

/// `base` (baton's own, see inherited_environment), then the config's
/// [environment], then what baton sets: LISTEN_FDS and LISTEN_FDNAMES for
/// `socket_count` sockets, NOTIFY_SOCKET, WATCHDOG_USEC when the watchdog is
/// on, and whatever the app's protocol adds (the shim's variables).
std::vector<std::string> child_environment(const std::vector<std::string>& base,
                                           const Config& config, size_t socket_count,
                                           const std::string& notify_socket,
                                           const AppProtocol& protocol);

}  // namespace baton

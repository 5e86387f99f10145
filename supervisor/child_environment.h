// The environment an instance of a generation starts with.
#pragma once

#include <string>
#include <vector>

#include "app_protocol.h"
#include "config.h"

namespace baton {

/// Which process of the service an instance is, for its environment.
struct InstanceIdentity {
  /// The generation's number (1 for the first, one more for each reload).
  int generation = 0;
  /// The instance's number within its generation, from 1.
  int instance = 1;
};

/// `base` (baton's own, see inherited_environment), then the config's
/// [environment], then what baton sets: LISTEN_FDS and LISTEN_FDNAMES for
/// `socket_count` sockets, NOTIFY_SOCKET, BATON_SERVICE (the config's
/// name), BATON_PID (baton's: a later baton finds apps left serving by one
/// that is gone by it), BATON_GENERATION and BATON_INSTANCE (`who`),
/// WATCHDOG_USEC when
/// the watchdog is on, and whatever the app's protocol adds (the shim's
/// variables).
std::vector<std::string> child_environment(const std::vector<std::string>& base,
                                           const Config& config, size_t socket_count,
                                           const std::string& notify_socket,
                                           const AppProtocol& protocol, InstanceIdentity who);

}  // namespace baton

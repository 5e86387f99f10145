// Per-generation listeners: the switch of new connections from one
// generation's listeners to another's, and the accept-queue lengths the
// drain waits on.
#pragma once

#include <vector>

#include "result.h"
#include "socket_set.h"

namespace baton {

/// Every later public connection on these sockets' addresses goes to them
/// (tcp/udp: the group's steering program; unix: rename over the public
/// path). Shared sockets are skipped.
Status switch_to(const std::vector<SharedSocket>& sockets);

/// Connections waiting in the accept queues of `sockets` (0 for sockets
/// that cannot tell, such as udp).
int queued_connections(const std::vector<SharedSocket>& sockets);

}  // namespace baton

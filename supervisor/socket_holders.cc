// Finding the processes that hold a socket, from /proc/PID/fd.
#include "socket_holders.h"

namespace baton {}  // namespace baton

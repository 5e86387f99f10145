// Unit tests for socket_holders: real sockets held by real processes.
#include <doctest/doctest.h>

#include "socket_holders.h"

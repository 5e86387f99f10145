// Socket holders: which processes hold a given kernel socket, found through
// /proc. baton uses it to find processes that escaped an app's process group
// but still hold one of baton's listening sockets.
#pragma once

namespace baton {}  // namespace baton

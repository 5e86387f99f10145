// A recipe of docs/servers.md run as a test: the server under baton with the
// recipe's files (tests/servers/configs/NAME), three reloads under load, a
// request in flight and an idle keep-alive connection across the first
// drain, then a stop; every outcome checked, and a summary line printed.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "load_client.h"

namespace servers {

/// What the server does with keep-alive connections.
enum class KeepAlive {
  /// It answers every request with "Connection: close" (or HTTP/1.0).
  kNone,
  /// It keeps them, but closes each after its first response without saying
  /// so: a client's second request on it fails.
  kDroppedAfterEachResponse,
  /// It keeps them, and closes the idle ones when it drains: a client that
  /// sends its next request at that moment sees a reset and must retry.
  kClosedAtDrain,
  /// It keeps them; when it drains, it answers the next request on an idle
  /// one with "Connection: close".
  kAnsweredWithClose,
};

/// The request the test keeps in flight across the first drain.
enum class InFlight {
  /// GET /hold, which the recipe's app answers once the file "release"
  /// exists in its working directory.
  kHeldResponse,
  /// A request whose head is sent in two parts, the second once the old
  /// generation drains (for servers that serve files or fixed answers).
  kPartialRequest,
};

/// How the test sees that the old generation has begun its drain.
struct DrainMarker {
  /// Text in a line of the old generation's output ("[gen G pid P] ...") in
  /// baton's log. Empty: no process of the old generation holds what was its
  /// main process's fd 3 (baton's socket, for a server that keeps it there)
  /// any more.
  std::string text{};
};

struct Recipe {
  /// The server's name in messages and in the summary.
  std::string name{};
  /// Directories under tests/servers/configs copied into the test's
  /// directory in this order (later files replace earlier ones); "8080" in
  /// them becomes the test's port.
  std::vector<std::string> dirs{};
  /// Programs that must exist (scripts/install-deps installs them).
  std::vector<std::string> binaries{};
  KeepAlive keep_alive = KeepAlive::kClosedAtDrain;
  InFlight in_flight = InFlight::kPartialRequest;
  DrainMarker drain_started{};
  /// How an old generation's drain ends, before " after draining for ...".
  std::string drain_exit = "exited with status 0";
  /// Answers say "served by pid P" with P the instance's pid.
  bool pid_in_body = false;
  /// The test directory is made readable by all (a server that switches to
  /// another user reads its files).
  bool world_readable = false;
  /// The server needs baton to hand it a non-blocking listener (fd 3) and
  /// gets one (`nonblocking = true`, which `server = "nginx"` implies).
  bool nonblocking_listener = false;
};

/// Runs the recipe (see the file comment); CHECKs and REQUIREs everything.
void run_recipe(const Recipe& recipe);

/// The directory of the recipes' files.
std::string configs_dir();

}  // namespace servers

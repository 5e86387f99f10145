// What `baton verify` will do, decided before it loads anything: its flags
// checked and given their defaults, the address it loads (a socket from
// `baton status`, loopback only) and when its reloads are due.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "duration.h"
#include "result.h"

namespace baton {

/// verify's options with their defaults applied. Invariant after
/// plan_verify: every field is in range.
struct VerifyPlan {
  /// Reloads during the run, 0..1000.
  int reloads = 3;
  /// How long the load runs at least (> 0).
  Millis duration{10000};
  /// Closed loop: the concurrent clients. With a rate: the most requests in
  /// flight (rate_clients).
  int connections = 8;
  /// Requests a second, open loop; 0: closed loop.
  int rate = 0;
  std::string path = "/";
  bool keepalive = false;
  /// The socket to load by name; "": the first tcp or unix one.
  std::string socket;
  /// Load this address instead of a socket's; "": the socket's.
  std::string address;
};

/// Checks verify's flags; every error is a usage error ("--reloads must be a
/// whole number 0..1000, not \"x\"").
Result<VerifyPlan> plan_verify(const VerifyFlags& flags);

/// The clients a paced run uses for `rate` requests a second: enough that
/// each has 20ms per request at that rate, at least 8, at most 256.
int rate_clients(int rate);

/// The address to load, from `status`'s "sockets": --address, else the
/// named (or first tcp or unix) socket's bound address. A wildcard address
/// is loaded on loopback (0.0.0.0:P as 127.0.0.1:P, [::]:P as [::1]:P); any
/// other address that is not loopback is refused, with what to do instead.
Result<std::string> load_address(const nlohmann::json& sockets, const VerifyPlan& plan);

/// When each reload is due, from the start: evenly spaced, the i-th of n at
/// duration * i / (n + 1), so that load runs before the first and after the
/// last.
std::vector<Millis> reload_times(Millis duration, int reloads);

}  // namespace baton

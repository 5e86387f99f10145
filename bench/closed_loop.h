// reload_bench's closed-loop HTTP load on one address: the tests' load
// client (tests/load) with the bench's settings (every request's latency
// recorded, 5 s per request at most), and the sum of several runs.
#pragma once

#include <memory>
#include <string>

#include "interrupt.h"
#include "load_client.h"

namespace bench {

/// "keepalive": keep-alive connections; anything else ("close", and "shim":
/// legacy answers with Connection: close) a new connection per request.
load::Mode load_mode(const std::string& mode);

/// Starts `connections` client threads on `address`, each with one request in
/// flight, for `duration`. Throws BenchError if the client cannot start.
std::unique_ptr<load::LoadRun> start_load(const std::string& address, const std::string& mode,
                                          int connections, Millis duration);

/// start_load, and its result once `duration` has passed (throws
/// BenchError if the bench is interrupted meanwhile).
load::LoadResult run_load(const std::string& address, const std::string& mode, int connections,
                          Millis duration);

/// Adds `part` to `total`: counts, failures (and examples, up to 10), pids,
/// samples (not re-sorted) and elapsed time.
void add_load(load::LoadResult& total, load::LoadResult&& part);

}  // namespace bench

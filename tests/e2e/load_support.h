// Load during end-to-end tests: start the project's load client at a
// service, wait for traffic, and end with a check that no request failed.
#pragma once

#include <memory>
#include <string>

#include "harness.h"
#include "load_client.h"

namespace e2e {

/// The two client modes the reload tests run under, and their names.
inline constexpr load::Mode kModes[] = {load::Mode::kConnectionPerRequest, load::Mode::kKeepAlive};
inline std::string mode_name(load::Mode mode) {
  return mode == load::Mode::kKeepAlive ? "keep-alive" : "connection per request";
}

/// Starts `connections` closed-loop clients at `address` (REQUIREs success).
std::unique_ptr<load::LoadRun> start_load(const std::string& address,
                                          load::Mode mode = load::Mode::kConnectionPerRequest,
                                          int connections = 4, Millis max_duration = 200s);

/// Waits until the load has completed `more` requests beyond now.
bool traffic_flows(load::LoadRun& run, uint64_t more = 50);

/// "ok N, failed M" and the failure examples.
std::string describe(const load::LoadResult& r);

/// Stops the load and checks that not one request failed.
load::LoadResult finish_without_failures(load::LoadRun& run);

}  // namespace e2e

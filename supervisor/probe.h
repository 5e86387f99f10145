// Readiness probes on the loop: one http GET or tcp connect against one
// listener of a candidate, bounded by its timeout. The Os seam's probe().
// The http answer's parser is in http_answer.h.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "http_answer.h"
#include "os.h"

namespace baton {

/// Starts one attempt; `done` is called exactly once, on the loop and never
/// from inside start_probe, unless the returned Pending is destroyed first
/// (then never). The attempt's handles outlive the Pending until libuv has
/// closed them, so the Pending may be destroyed at any time, `done` included.
///
/// The summary names the probe ("http /health", or "tcp 127.0.0.1:8080" /
/// "unix /run/app.sock" for a connect probe) and what happened:
///   "http /health: 200 in 2ms"            passed
///   "http /health: 503 in 3ms"            not 2xx
///   "http /health: 200 in 2ms, expected 204"
///   "http /health: 200 in 2ms, body lacks \"ok\""
///   "http /health: malformed answer (status line \"SSH-2.0\")"
///   "http /health: timed out after 1s"
///   "tcp 127.0.0.1:8080: connected in 1ms"
///   "tcp 127.0.0.1:8080: connection refused"  (libuv's error text)
///
/// The http request is written with write(2): the process must ignore
/// SIGPIPE (baton's daemon does), or a server that resets the connection
/// before reading it ends the process.
std::unique_ptr<Pending> start_probe(uv_loop_t* loop, const ProbeSpec& spec,
                                     std::function<void(ProbeResult)> done);

}  // namespace baton

// Readiness probes on the loop: one http GET or tcp connect against one
// listener of a candidate, bounded by its timeout. The Os seam's probe().
// The http answer's parser is a pure function, so malformed answers can be
// tested without a server.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "os.h"

namespace baton {

/// An http probe reads at most this much of the answer (status line,
/// headers and body) and judges what it has when the limit is reached.
inline constexpr size_t kProbeReadLimit = 64 * 1024;

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

/// How much of an http answer there can be beyond what was read.
enum class AnswerEnd {
  /// More may arrive.
  kOpen,
  /// The server closed the connection: this is all of it.
  kClosed,
  /// kProbeReadLimit was reached: judge what arrived, a cut body included.
  kCapped,
};

/// What an http answer read so far says.
struct HttpAnswer {
  enum class State { kIncomplete, kComplete, kMalformed };
  State state = State::kIncomplete;
  /// kComplete: the status code (100..999).
  int status = 0;
  /// kComplete: the body, de-chunked; cut short when the answer was capped.
  std::string body;
  /// kMalformed: what is wrong, as the end of a summary: "malformed answer
  /// (status line \"xyz\")", "connection closed without an answer".
  std::string problem;
};

/// Parses the bytes of an http/1.x answer read so far. The body is framed by
/// Content-Length, chunked transfer coding, or the end of the connection;
/// 204 and 304 answers have none. Never kIncomplete unless `end` is kOpen.
HttpAnswer parse_http_answer(std::string_view data, AnswerEnd end);

}  // namespace baton

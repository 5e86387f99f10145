// The http/1.x answer parser of the http readiness probe: a pure function
// from the bytes read so far to incomplete, complete (status and body) or
// malformed, so malformed answers can be tested without a server.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace baton {

/// An http probe reads at most this much of the answer (status line,
/// headers and body) and judges what it has when the limit is reached.
inline constexpr size_t kProbeReadLimit = 64 * 1024;

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

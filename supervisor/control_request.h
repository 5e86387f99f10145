// ControlRequest: one request read from the control socket, decoded and
// type-checked before anything acts on it. Any JSON a client sends is data:
// a wrong type is an error reply, never an exception in baton's loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "result.h"

namespace baton {

/// A well-formed request: {"command": "status"|"reload"|"promote"|"rollback"|"stop"|
/// "logs"|"metrics", "wait": bool, "canary": "10%", "logs": bool, "follow": bool,
/// "lines": N, "generation": G}.
struct ControlRequest {
  std::string command;
  /// reload, promote: also wait until the replaced generation has exited.
  bool wait = false;
  /// reload only: a canary reload with this share (parts of 10,000).
  std::optional<uint32_t> canary;
  /// reload only: also stream the new generation's output lines.
  bool logs = false;
  /// logs only: keep sending new lines; the last `lines` kept (none: all),
  /// only those of `generation` (none: all).
  bool follow = false;
  std::optional<int> lines, generation;
};

/// Checks a decoded request. The error says what is wrong with it
/// ("'command' must be a string", "unknown command \"x\"").
Result<ControlRequest> parse_control_request(const nlohmann::json& request);

/// A reply or event as one line of JSON; bytes that are not UTF-8 (an app's
/// STATUS=, its stderr, a file name) are replaced with U+FFFD, never thrown on.
std::string encode_control_message(const nlohmann::json& message);

}  // namespace baton

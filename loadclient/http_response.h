// Parsing an HTTP/1.x response head for the load client: the status, the
// body's framing (Content-Length or EOF) and whether the connection may be
// reused; and the server pid that baton's test apps put in their bodies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace load {

/// The largest body the load client accepts (a bigger Content-Length is invalid).
constexpr uint64_t kMaxBodyBytes = 64 * 1024 * 1024;

/// A parsed response head.
struct ResponseHead {
  int status = 0;
  /// The connection may carry another request after this response.
  bool keep_alive = false;
  /// Body length; nullopt means the body runs until EOF.
  std::optional<uint64_t> content_length;
};

/// Parses a response head (without its final CRLFCRLF); false, with `why`
/// ("bad status line \"...\""), if it is malformed or uses a framing the
/// client does not support (Transfer-Encoding other than identity).
bool parse_head(std::string_view text, ResponseHead& head, std::string& why);

/// The N in "... pid N ..." ("hello from pid N", "legacy pid N"), or 0.
int parse_pid(std::string_view body);

}  // namespace load

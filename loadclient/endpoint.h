// Where the load client may send requests: a loopback TCP address or a unix
// socket, parsed and checked once. Anything else is refused, because the
// load client exists to load services on this host, never someone else's.
#pragma once

#include <sys/socket.h>

#include <string>
#include <variant>

namespace load {

/// A validated loopback address to connect() to.
struct Endpoint {
  sockaddr_storage addr{};
  /// The meaningful length of `addr`.
  socklen_t len = 0;
  /// As the user wrote it, for messages.
  std::string text;
};

/// Parses "127.0.0.1:80", "[::1]:80", "localhost:80" (= 127.0.0.1), a unix
/// socket path (anything containing '/') or an abstract unix name ("@name");
/// an error message for anything malformed or not loopback ("address
/// 10.0.0.1:80: 10.0.0.1 is not loopback").
std::variant<Endpoint, std::string> parse_endpoint(const std::string& address);

}  // namespace load

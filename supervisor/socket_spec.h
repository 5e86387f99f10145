// SocketSpec: what one configured listening socket is (kind, address and
// options), parsed from URLs such as "tcp://[::1]:8080" or "unix:@name".
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace baton {

enum class SocketKind { kTcp, kUdp, kUnix };

/// One listening socket as configured. Two specs that compare equal describe
/// the same kernel socket, so a reload can keep it open.
struct SocketSpec {
  /// The name the app sees in LISTEN_FDNAMES: [A-Za-z0-9_.-], 1..255 chars.
  std::string name;
  /// The URL as written, for messages.
  std::string url;
  SocketKind kind = SocketKind::kTcp;

  /// tcp/udp: the numeric host ("127.0.0.1", "::1") and its family.
  std::string host;
  int family = 0;
  /// tcp/udp: the port; 0 asks the kernel for a free one.
  uint16_t port = 0;

  /// unix: the filesystem path, or the abstract name (without the '@').
  std::string path;
  bool abstract = false;

  /// listen() backlog; nullopt means the system maximum (net.core.somaxconn).
  std::optional<int> backlog;
  /// tcp/udp on "::": accept IPv6 only. Default false (dual-stack).
  bool v6only = false;
  /// unix path sockets: permission bits for the socket file.
  std::optional<mode_t> mode;
  /// SO_REUSEPORT. Off by default: with it, each socket has its own accept
  /// queue, and closing one resets the connections queued on it.
  bool reuseport = false;

  bool operator==(const SocketSpec&) const = default;

  /// "127.0.0.1:8080", "[::1]:8080", "/run/app.sock", "@name".
  std::string address() const;
  /// "tcp", "udp" or "unix".
  std::string_view kind_name() const;
};

/// Parses a socket URL into kind and address; options keep their defaults.
/// Relative unix paths are taken relative to `base_dir` when it is non-empty.
Result<SocketSpec> parse_socket_url(std::string_view url, std::string_view base_dir = {});

/// Checks a socket name for LISTEN_FDNAMES (no ':' and printable).
Status check_socket_name(std::string_view name);

/// Parses an octal file mode such as "0660" or "660".
Result<mode_t> parse_mode(std::string_view text);

}  // namespace baton

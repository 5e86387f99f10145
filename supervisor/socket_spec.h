// SocketSpec: what one configured listening socket is (kind, address and
// options), parsed from URLs such as "tcp://[::1]:8080" or "unix:@name";
// SocketAddress: where a socket is bound, as a value to compare.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace baton {

enum class SocketKind { kTcp, kUdp, kUnix };

/// "tcp", "udp" or "unix".
std::string_view socket_kind_name(SocketKind kind);

/// Where a socket is bound: its kind and, for tcp/udp, the family, the IP
/// address's bytes and the port; for unix, the path or abstract name. Equal
/// addresses are the same binding: sockets are compared as these values,
/// never as formatted text ("::1" and "0::1" are one address).
struct SocketAddress {
  SocketKind kind = SocketKind::kTcp;
  /// AF_INET or AF_INET6 for tcp/udp, AF_UNIX for unix; 0 when unknown.
  int family = 0;
  /// tcp/udp: the address in network byte order (AF_INET: the first 4 bytes).
  std::array<uint8_t, 16> ip{};
  uint16_t port = 0;
  /// unix: the filesystem path, or the abstract name (without the '@').
  std::string path;
  bool abstract = false;

  /// Equality, and an order so that addresses can key a map.
  auto operator<=>(const SocketAddress&) const = default;

  /// Whether a socket bound at `bound` is what this (configured) address
  /// asks for: the same address, or for a tcp/udp port 0 (the kernel chooses)
  /// the same but for the port.
  bool admits(const SocketAddress& bound) const;

  /// "127.0.0.1:8080", "[::1]:8080", "/run/app.sock", "@name".
  std::string to_string() const;
};

/// The address in `sa` (from getsockname, `length` bytes) of a socket of
/// `kind`; a family other than AF_INET, AF_INET6 or AF_UNIX gives family 0.
SocketAddress socket_address_of(SocketKind kind, const sockaddr* sa, socklen_t length);

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
  /// O_NONBLOCK on the socket the app gets (systemd's NonBlocking=). Off by
  /// default, as with systemd. A server that takes an inherited listener to
  /// be non-blocking (nginx) needs it: with a blocking one, a worker woken
  /// for a connection another worker took waits in accept(), holding the
  /// connection it accepted before unanswered.
  bool nonblocking = false;

  bool operator==(const SocketSpec&) const = default;

  /// The address as a value (kind, host bytes and port, or unix path), to
  /// compare with other specs and with the address a socket is bound to.
  SocketAddress socket_address() const;
  /// "127.0.0.1:8080", "[::1]:8080", "/run/app.sock", "@name": the host as
  /// written, for messages.
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

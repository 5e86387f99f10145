// Parsing of socket URLs and related option values.
#include "socket_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "unix_address.h"

namespace baton {
namespace {

Error bad_url(std::string_view url, std::string_view why) {
  return error(
      fmt::format("invalid socket URL \"{}\": {} (expected tcp://HOST:PORT, udp://HOST:PORT, "
                  "unix:/PATH or unix:@NAME)",
                  url, why));
}

Result<uint16_t> parse_port(std::string_view url, std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return bad_url(url, fmt::format("port \"{}\" is not a number from 0 to 65535", text));
  }
  return static_cast<uint16_t>(value);
}

/// Fills host, family and port from "HOST:PORT" or "[V6]:PORT".
Status parse_inet(std::string_view url, std::string_view rest, SocketSpec& spec) {
  std::string_view host, port;
  if (rest.starts_with('[')) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad_url(url, "missing ']' after IPv6 address");
    host = rest.substr(1, close - 1);
    if (rest.substr(close + 1, 1) != ":") return bad_url(url, "missing :PORT");
    port = rest.substr(close + 2);
    spec.family = AF_INET6;
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad_url(url, "missing :PORT");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad_url(url, "write IPv6 addresses in brackets, as [::1]:PORT");
    }
    spec.family = AF_INET;
  }
  unsigned char buf[sizeof(in6_addr)];
  std::string host_str(host);
  if (inet_pton(spec.family, host_str.c_str(), buf) != 1) {
    return bad_url(url, fmt::format("\"{}\" is not a numeric {} address (use e.g. {})", host,
                                    spec.family == AF_INET ? "IPv4" : "IPv6",
                                    spec.family == AF_INET ? "127.0.0.1" : "[::1]"));
  }
  auto port_value = parse_port(url, port);
  if (!port_value) return port_value.error();
  spec.host = host_str;
  spec.port = *port_value;
  return {};
}

Status parse_unix(std::string_view url, std::string_view rest, std::string_view base_dir,
                  SocketSpec& spec) {
  if (rest.empty()) return bad_url(url, "empty unix path");
  if (rest.starts_with('@')) {
    spec.abstract = true;
    spec.path = std::string(rest.substr(1));
    if (spec.path.empty()) return bad_url(url, "empty abstract name");
  } else if (rest.starts_with('/') || base_dir.empty()) {
    spec.path = std::string(rest);
  } else {
    spec.path = fmt::format("{}/{}", base_dir, rest);
  }
  // sun_path holds 108 bytes including the terminating NUL (or leading NUL).
  if (spec.path.size() > kMaxUnixPath) {
    return bad_url(url, fmt::format("unix path is longer than {} bytes", kMaxUnixPath));
  }
  return {};
}

}  // namespace

std::string_view socket_kind_name(SocketKind kind) {
  switch (kind) {
    case SocketKind::kTcp:
      return "tcp";
    case SocketKind::kUdp:
      return "udp";
    case SocketKind::kUnix:
      return "unix";
  }
  return "?";
}

bool SocketAddress::admits(const SocketAddress& bound) const {
  if (*this == bound) return true;
  if (kind == SocketKind::kUnix || port != 0) return false;
  SocketAddress any_port = bound;
  any_port.port = 0;
  return *this == any_port;
}

std::string SocketAddress::to_string() const {
  if (kind == SocketKind::kUnix) return abstract ? "@" + path : path;
  char host[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET6) {
    inet_ntop(AF_INET6, ip.data(), host, sizeof host);
    return fmt::format("[{}]:{}", host, port);
  }
  if (family == AF_INET) inet_ntop(AF_INET, ip.data(), host, sizeof host);
  return fmt::format("{}:{}", host, port);
}

SocketAddress socket_address_of(SocketKind kind, const sockaddr* sa, socklen_t length) {
  SocketAddress a;
  a.kind = kind;
  if (sa->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    a.family = AF_INET6;
    std::memcpy(a.ip.data(), &in6->sin6_addr, sizeof in6->sin6_addr);
    a.port = ntohs(in6->sin6_port);
  } else if (sa->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
    a.family = AF_INET;
    std::memcpy(a.ip.data(), &in4->sin_addr, sizeof in4->sin_addr);
    a.port = ntohs(in4->sin_port);
  } else if (sa->sa_family == AF_UNIX) {
    a.family = AF_UNIX;
    UnixName name = unix_name_of(*reinterpret_cast<const sockaddr_un*>(sa), length);
    a.path = std::move(name.path);
    a.abstract = name.abstract;
  }
  return a;
}

SocketAddress SocketSpec::socket_address() const {
  SocketAddress a;
  a.kind = kind;
  if (kind == SocketKind::kUnix) {
    a.family = AF_UNIX;
    a.path = path;
    a.abstract = abstract;
    return a;
  }
  a.family = family;
  // A parsed spec's host is numeric; anything else keeps the zero address.
  inet_pton(family, host.c_str(), a.ip.data());
  a.port = port;
  return a;
}

std::string SocketSpec::address() const {
  if (kind == SocketKind::kUnix) return abstract ? "@" + path : path;
  if (family == AF_INET6) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string_view SocketSpec::kind_name() const {
  return socket_kind_name(kind);
}

Result<SocketSpec> parse_socket_url(std::string_view url, std::string_view base_dir) {
  SocketSpec spec;
  spec.url = std::string(url);
  Status parsed;
  if (url.starts_with("tcp://")) {
    spec.kind = SocketKind::kTcp;
    parsed = parse_inet(url, url.substr(6), spec);
  } else if (url.starts_with("udp://")) {
    spec.kind = SocketKind::kUdp;
    parsed = parse_inet(url, url.substr(6), spec);
  } else if (url.starts_with("unix:")) {
    spec.kind = SocketKind::kUnix;
    parsed = parse_unix(url, url.substr(5), base_dir, spec);
  } else {
    return bad_url(url, "unknown scheme");
  }
  if (!parsed) return parsed.error();
  return spec;
}

Status check_socket_name(std::string_view name) {
  if (name.empty() || name.size() > 255) {
    return error(fmt::format("socket name \"{}\" must be 1 to 255 characters", name));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return error(fmt::format(
          "socket name \"{}\" may contain only letters, digits, '_', '-' and '.'", name));
    }
  }
  return {};
}

Result<mode_t> parse_mode(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 07777) {
    return error(fmt::format("invalid file mode \"{}\" (write octal, e.g. \"0660\")", text));
  }
  return static_cast<mode_t>(value);
}

}  // namespace baton

// Loopback addresses for the load client (endpoint.h).
#include "endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>

namespace load {
namespace {

std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

/// A path, or "@name" for the abstract namespace (a leading NUL byte and no
/// terminator: the length says where the name ends).
std::variant<Endpoint, std::string> unix_endpoint(const std::string& address) {
  Endpoint ep;
  auto* sun = reinterpret_cast<sockaddr_un*>(&ep.addr);
  if (address.size() >= sizeof sun->sun_path) return "unix socket path too long: " + address;
  sun->sun_family = AF_UNIX;
  const bool abstract = address.starts_with('@');
  if (abstract) {
    std::memcpy(sun->sun_path + 1, address.data() + 1, address.size() - 1);
  } else {
    std::memcpy(sun->sun_path, address.data(), address.size());
  }
  ep.len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (abstract ? 0 : 1));
  ep.text = address;
  return ep;
}

std::variant<Endpoint, std::string> inet6_endpoint(std::string_view host, uint16_t port) {
  Endpoint ep;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  if (inet_pton(AF_INET6, std::string(host).c_str(), &sin6->sin6_addr) != 1) {
    return fmt::format("invalid IPv6 address [{}]", host);
  }
  if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) return fmt::format("[{}] is not loopback", host);
  ep.len = sizeof(sockaddr_in6);
  return ep;
}

std::variant<Endpoint, std::string> inet4_endpoint(std::string_view host, uint16_t port) {
  Endpoint ep;
  auto* sin = reinterpret_cast<sockaddr_in*>(&ep.addr);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  const std::string name = host == "localhost" ? "127.0.0.1" : std::string(host);
  if (inet_pton(AF_INET, name.c_str(), &sin->sin_addr) != 1) {
    return fmt::format("invalid IPv4 address {} (names other than localhost are not resolved)",
                       host);
  }
  if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) return fmt::format("{} is not loopback", host);
  ep.len = sizeof(sockaddr_in);
  return ep;
}

}  // namespace

std::variant<Endpoint, std::string> parse_endpoint(const std::string& address) {
  if (address.find('/') != std::string::npos || address.starts_with('@')) {
    return unix_endpoint(address);
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "address " + address + " has no :port";
  const auto port = parse_port(std::string_view(address).substr(colon + 1));
  if (!port) return "invalid port in address " + address;
  std::string_view host = std::string_view(address).substr(0, colon);
  std::variant<Endpoint, std::string> ep;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    ep = inet6_endpoint(host.substr(1, host.size() - 2), *port);
  } else {
    ep = inet4_endpoint(host, *port);
  }
  if (auto* e = std::get_if<Endpoint>(&ep)) e->text = address;
  if (auto* msg = std::get_if<std::string>(&ep)) *msg = "address " + address + ": " + *msg;
  return ep;
}

}  // namespace load

// Tests SocketAddress: sockets compared as values (kind, address bytes and
// port, or unix name), not as formatted text; what a port 0 in the config
// admits; and the ListenSocket and config checks that compare them.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <string>

#include "config.h"
#include "listen_socket.h"
#include "socket_spec.h"

using baton::config_from_flags;
using baton::ListenSocket;
using baton::parse_socket_url;
using baton::SocketAddress;
using baton::SocketKind;
using baton::SocketSpec;

namespace {

SocketSpec spec(std::string_view url) {
  auto s = parse_socket_url(url);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  s->name = "http";
  return s.value();
}

SocketAddress address(std::string_view url) {
  return spec(url).socket_address();
}

}  // namespace

TEST_CASE("one address written two ways is one address") {
  CHECK(address("tcp://[::1]:8080") == address("tcp://[0:0::1]:8080"));
  CHECK(address("tcp://[::ffff:127.0.0.1]:80") == address("tcp://[::ffff:7f00:1]:80"));
  CHECK(address("tcp://127.0.0.1:8080") == address("tcp://127.0.0.1:8080"));
  CHECK(address("unix:@name") == address("unix:@name"));
  CHECK(address("unix:/run/a.sock") == address("unix:/run/a.sock"));
}

TEST_CASE("addresses differ in kind, family, host, port, path or abstractness") {
  CHECK(address("tcp://127.0.0.1:8080") != address("udp://127.0.0.1:8080"));
  CHECK(address("tcp://127.0.0.1:8080") != address("tcp://127.0.0.2:8080"));
  CHECK(address("tcp://127.0.0.1:8080") != address("tcp://127.0.0.1:8081"));
  CHECK(address("tcp://0.0.0.0:8080") != address("tcp://[::]:8080"));
  CHECK(address("tcp://[::ffff:127.0.0.1]:80") != address("tcp://127.0.0.1:80"));
  CHECK(address("unix:/a") != address("unix:@/a"));
  CHECK(address("unix:/a") != address("unix:/b"));
  // They order (to key a map) consistently with equality.
  SocketAddress a = address("tcp://127.0.0.1:1"), b = address("tcp://127.0.0.1:2");
  CHECK(((a < b) != (b < a)));
}

TEST_CASE("to_string writes the address as baton shows a bound one") {
  CHECK(address("tcp://127.0.0.1:8080").to_string() == "127.0.0.1:8080");
  CHECK(address("tcp://[0:0::1]:8080").to_string() == "[::1]:8080");
  CHECK(address("udp://[::]:53").to_string() == "[::]:53");
  CHECK(address("unix:/run/a.sock").to_string() == "/run/a.sock");
  CHECK(address("unix:@name").to_string() == "@name");
}

TEST_CASE("a configured port 0 admits any port on the same host and kind, nothing else") {
  SocketAddress any = address("tcp://127.0.0.1:0");
  CHECK(any.admits(address("tcp://127.0.0.1:41234")));
  CHECK(any.admits(any));
  CHECK_FALSE(any.admits(address("tcp://127.0.0.2:41234")));
  CHECK_FALSE(any.admits(address("udp://127.0.0.1:41234")));
  CHECK_FALSE(address("tcp://127.0.0.1:8080").admits(address("tcp://127.0.0.1:41234")));
  CHECK(address("tcp://127.0.0.1:8080").admits(address("tcp://127.0.0.1:8080")));
  CHECK_FALSE(address("unix:@a").admits(address("unix:@b")));
}

TEST_CASE("a bound socket's address is read back as a value") {
  auto sock = ListenSocket::bind(spec("tcp://127.0.0.1:0"));
  REQUIRE_MESSAGE(sock.ok(), sock.error().message);
  const SocketAddress& bound = sock->bound();
  CHECK(bound.kind == SocketKind::kTcp);
  CHECK(bound.family == AF_INET);
  CHECK(bound.port != 0);
  CHECK(bound == address("tcp://127.0.0.1:" + std::to_string(bound.port)));
  CHECK(sock->bound_address() == "127.0.0.1:" + std::to_string(bound.port));
}

TEST_CASE("check_matches compares the fd's address with the config's as values") {
  auto sock = ListenSocket::bind(spec("tcp://[::1]:0"));
  REQUIRE_MESSAGE(sock.ok(), sock.error().message);
  std::string port = std::to_string(sock->bound().port);
  CHECK(ListenSocket::check_matches(sock->fd(), spec("tcp://[::1]:0"), "fd 3").ok());
  CHECK(ListenSocket::check_matches(sock->fd(), spec("tcp://[::1]:" + port), "fd 3").ok());
  CHECK(ListenSocket::check_matches(sock->fd(), spec("tcp://[0::1]:" + port), "fd 3").ok());
  auto udp = ListenSocket::check_matches(sock->fd(), spec("udp://[::1]:0"), "fd 3");
  REQUIRE_FALSE(udp.ok());
  CHECK(udp.error().message == "http: fd 3 is a tcp [::1]:" + port +
                                   " socket, but the config wants udp [::1]:0 (udp://[::1]:0)");
  auto other_port = ListenSocket::check_matches(sock->fd(), spec("tcp://[::1]:1"), "fd 3");
  CHECK_FALSE(other_port.ok());

  auto unix_sock = ListenSocket::bind(spec("unix:@baton-unit-" + std::to_string(getpid())));
  REQUIRE_MESSAGE(unix_sock.ok(), unix_sock.error().message);
  CHECK(ListenSocket::check_matches(unix_sock->fd(), unix_sock->spec(), "fd 4").ok());
  CHECK(ListenSocket::check_matches(unix_sock->fd(), spec("unix:@other"), "fd 4").error().message ==
        "http: fd 4 is a unix @baton-unit-" + std::to_string(getpid()) +
            " socket, but the config wants unix @other (unix:@other)");
}

TEST_CASE("check_matches says so when the fd is not a socket") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  auto r = ListenSocket::check_matches(fds[0], spec("tcp://127.0.0.1:0"), "fd 3");
  close(fds[0]);
  close(fds[1]);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "http: fd 3 is not a socket, but the config wants tcp 127.0.0.1:0 (tcp://127.0.0.1:0)");
}

TEST_CASE("has_address_of: the configured address, or the port the kernel chose for port 0") {
  auto sock = ListenSocket::bind(spec("tcp://127.0.0.1:0"));
  REQUIRE_MESSAGE(sock.ok(), sock.error().message);
  std::string port = std::to_string(sock->bound().port);
  CHECK(sock->has_address_of(spec("tcp://127.0.0.1:0")));
  CHECK(sock->has_address_of(spec("tcp://127.0.0.1:" + port)));
  CHECK_FALSE(sock->has_address_of(spec("tcp://127.0.0.2:" + port)));
  CHECK_FALSE(sock->has_address_of(spec("udp://127.0.0.1:" + port)));
}

TEST_CASE("a config naming one address twice, written two ways, is refused") {
  auto c = config_from_flags({"a=tcp://[::1]:8080", "b=tcp://[0::1]:8080"}, "", {"app"});
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message == "baton run: address tcp://[0::1]:8080 is configured twice");
  CHECK(config_from_flags({"a=tcp://[::1]:8080", "b=udp://[::1]:8080"}, "", {"app"}).ok());
}

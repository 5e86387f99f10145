// Tests parse_socket_url, SocketSpec::address/kind_name, check_socket_name and
// parse_mode: how listening sockets are written in configs and flags.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <string>

#include "socket_spec.h"

using baton::check_socket_name;
using baton::parse_mode;
using baton::parse_socket_url;
using baton::SocketKind;
using baton::SocketSpec;

namespace {

SocketSpec parse_ok(std::string_view url, std::string_view base_dir = {}) {
  auto spec = parse_socket_url(url, base_dir);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  return spec.value();
}

std::string url_error(std::string_view url, std::string_view base_dir = {}) {
  auto spec = parse_socket_url(url, base_dir);
  REQUIRE_FALSE(spec.ok());
  return spec.error().message;
}

/// The message parse_socket_url gives for `url` failing for `why`.
std::string bad_url(std::string_view url, std::string_view why) {
  return "invalid socket URL \"" + std::string(url) + "\": " + std::string(why) +
         " (expected tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH or unix:@NAME)";
}

}  // namespace

TEST_CASE("tcp URLs with IPv4 hosts are parsed") {
  SocketSpec s = parse_ok("tcp://127.0.0.1:8080");
  CHECK(s.kind == SocketKind::kTcp);
  CHECK(s.url == "tcp://127.0.0.1:8080");
  CHECK(s.host == "127.0.0.1");
  CHECK(s.family == AF_INET);
  CHECK(s.port == 8080);
  CHECK(s.path == "");
  CHECK_FALSE(s.abstract);
  CHECK_FALSE(s.backlog.has_value());
  CHECK_FALSE(s.v6only);
  CHECK_FALSE(s.mode.has_value());
  CHECK_FALSE(s.reuseport);
  CHECK(s.address() == "127.0.0.1:8080");
  CHECK(s.kind_name() == "tcp");

  SocketSpec any = parse_ok("tcp://0.0.0.0:80");
  CHECK(any.host == "0.0.0.0");
  CHECK(any.port == 80);
  CHECK(any.address() == "0.0.0.0:80");
}

TEST_CASE("tcp URLs with bracketed IPv6 hosts are parsed") {
  SocketSpec s = parse_ok("tcp://[::1]:8080");
  CHECK(s.host == "::1");
  CHECK(s.family == AF_INET6);
  CHECK(s.port == 8080);
  CHECK(s.address() == "[::1]:8080");

  SocketSpec any = parse_ok("tcp://[::]:8080");
  CHECK(any.host == "::");
  CHECK(any.family == AF_INET6);
  CHECK(any.address() == "[::]:8080");
}

TEST_CASE("udp URLs and port 0 are accepted") {
  SocketSpec s = parse_ok("udp://127.0.0.1:5353");
  CHECK(s.kind == SocketKind::kUdp);
  CHECK(s.kind_name() == "udp");
  CHECK(s.address() == "127.0.0.1:5353");

  SocketSpec zero = parse_ok("tcp://127.0.0.1:0");
  CHECK(zero.port == 0);
  CHECK(parse_ok("tcp://127.0.0.1:65535").port == 65535);
}

TEST_CASE("unix URLs take absolute, relative and abstract addresses") {
  SocketSpec abs = parse_ok("unix:/run/app.sock", "/etc/baton");
  CHECK(abs.kind == SocketKind::kUnix);
  CHECK(abs.kind_name() == "unix");
  CHECK(abs.path == "/run/app.sock");
  CHECK_FALSE(abs.abstract);
  CHECK(abs.address() == "/run/app.sock");

  CHECK(parse_ok("unix:run/app.sock", "/etc/baton").path == "/etc/baton/run/app.sock");
  CHECK(parse_ok("unix:app.sock").path == "app.sock");

  SocketSpec at = parse_ok("unix:@my-app", "/etc/baton");
  CHECK(at.abstract);
  CHECK(at.path == "my-app");
  CHECK(at.address() == "@my-app");
}

TEST_CASE("unix paths may use 107 bytes but not 108") {
  std::string longest = "/" + std::string(106, 'a');
  CHECK(parse_ok("unix:" + longest).path == longest);
  CHECK(parse_ok("unix:@" + std::string(107, 'a')).path.size() == 107);

  std::string too_long = "/" + std::string(107, 'a');
  CHECK(url_error("unix:" + too_long) ==
        bad_url("unix:" + too_long, "unix path is longer than 107 bytes"));
  std::string rel = std::string(100, 'a');
  CHECK(url_error("unix:" + rel, "/etc/baton") ==
        bad_url("unix:" + rel, "unix path is longer than 107 bytes"));
}

TEST_CASE("socket URLs with a bad scheme, host or port are refused") {
  CHECK(url_error("http://127.0.0.1:80") == bad_url("http://127.0.0.1:80", "unknown scheme"));
  CHECK(url_error("127.0.0.1:80") == bad_url("127.0.0.1:80", "unknown scheme"));
  CHECK(url_error("tcp://127.0.0.1") == bad_url("tcp://127.0.0.1", "missing :PORT"));
  CHECK(url_error("tcp://[::1]") == bad_url("tcp://[::1]", "missing :PORT"));
  CHECK(url_error("tcp://[::1:80") == bad_url("tcp://[::1:80", "missing ']' after IPv6 address"));
  CHECK(url_error("tcp://127.0.0.1:65536") ==
        bad_url("tcp://127.0.0.1:65536", "port \"65536\" is not a number from 0 to 65535"));
  CHECK(url_error("tcp://127.0.0.1:") ==
        bad_url("tcp://127.0.0.1:", "port \"\" is not a number from 0 to 65535"));
  CHECK(url_error("tcp://127.0.0.1:http") ==
        bad_url("tcp://127.0.0.1:http", "port \"http\" is not a number from 0 to 65535"));
  CHECK(url_error("tcp://localhost:8080") ==
        bad_url("tcp://localhost:8080",
                "\"localhost\" is not a numeric IPv4 address (use e.g. 127.0.0.1)"));
  CHECK(url_error("tcp://[fe80::zz]:80") ==
        bad_url("tcp://[fe80::zz]:80",
                "\"fe80::zz\" is not a numeric IPv6 address (use e.g. [::1])"));
  CHECK(url_error("tcp://::1:8080") ==
        bad_url("tcp://::1:8080", "write IPv6 addresses in brackets, as [::1]:PORT"));
}

TEST_CASE("unix URLs with an empty path or name are refused") {
  CHECK(url_error("unix:") == bad_url("unix:", "empty unix path"));
  CHECK(url_error("unix:@") == bad_url("unix:@", "empty abstract name"));
}

TEST_CASE("check_socket_name accepts letters, digits, '_', '-' and '.'") {
  CHECK(check_socket_name("http").ok());
  CHECK(check_socket_name("Admin_API-v2.0").ok());
  CHECK(check_socket_name(std::string(255, 'a')).ok());
}

TEST_CASE("check_socket_name refuses empty, over-long and unsafe names") {
  CHECK(check_socket_name("").error().message == "socket name \"\" must be 1 to 255 characters");
  std::string long_name(256, 'a');
  CHECK(check_socket_name(long_name).error().message ==
        "socket name \"" + long_name + "\" must be 1 to 255 characters");
  CHECK(check_socket_name("a:b").error().message ==
        "socket name \"a:b\" may contain only letters, digits, '_', '-' and '.'");
  CHECK_FALSE(check_socket_name("a b").ok());
  CHECK_FALSE(check_socket_name("a/b").ok());
  CHECK_FALSE(check_socket_name("caf\xc3\xa9").ok());
}

TEST_CASE("parse_mode reads octal modes with or without a leading zero") {
  CHECK(parse_mode("0660").value() == 0660);
  CHECK(parse_mode("660").value() == 0660);
  CHECK(parse_mode("0").value() == 0);
  CHECK(parse_mode("7777").value() == 07777);
}

TEST_CASE("parse_mode refuses non-octal text") {
  CHECK(parse_mode("0999").error().message ==
        "invalid file mode \"0999\" (write octal, e.g. \"0660\")");
  CHECK(parse_mode("rw").error().message ==
        "invalid file mode \"rw\" (write octal, e.g. \"0660\")");
  CHECK(parse_mode("").error().message == "invalid file mode \"\" (write octal, e.g. \"0660\")");
  CHECK_FALSE(parse_mode("10000").ok());
  CHECK_FALSE(parse_mode("-660").ok());
}

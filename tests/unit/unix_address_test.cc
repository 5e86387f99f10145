// Tests unix_path_address, unix_abstract_address, unix_address and
// unix_name_of: the one place baton builds and reads sockaddr_un, with the
// lengths the kernel takes (a path and its NUL; a leading NUL and the name).
#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <string>

#include "unique_fd.h"
#include "unix_address.h"

using baton::kMaxUnixPath;
using baton::UniqueFd;
using baton::unix_abstract_address;
using baton::unix_address;
using baton::unix_name_of;
using baton::unix_path_address;
using baton::UnixAddress;
using baton::UnixName;

namespace {

constexpr size_t kOffset = offsetof(sockaddr_un, sun_path);

/// The name a socket bound to `a` has, read back with getsockname.
UnixName bound_name(const UnixAddress& a) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  REQUIRE(bind(fd.get(), a.get(), a.length) == 0);
  sockaddr_un got{};
  socklen_t len = sizeof got;
  REQUIRE(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &len) == 0);
  return unix_name_of(got, len);
}

}  // namespace

TEST_CASE("a sockaddr_un holds a path or an abstract name of at most 107 bytes") {
  CHECK(kMaxUnixPath == 107);
}

TEST_CASE("a path address is the path and its NUL") {
  auto a = unix_path_address("/run/baton/app.sock");
  REQUIRE(a.ok());
  CHECK(a->addr.sun_family == AF_UNIX);
  CHECK(std::string(a->addr.sun_path) == "/run/baton/app.sock");
  CHECK(a->length == kOffset + 19 + 1);
  // A leading '@' is part of a path given as a path.
  auto at = unix_path_address("@not-abstract");
  REQUIRE(at.ok());
  CHECK(at->addr.sun_path[0] == '@');
  CHECK(at->length == kOffset + 13 + 1);
}

TEST_CASE("a path of 107 bytes fits; 108 is refused with the path and the limit") {
  std::string longest = "/" + std::string(kMaxUnixPath - 1, 'p');
  auto fits = unix_path_address(longest);
  REQUIRE(fits.ok());
  CHECK(fits->length == sizeof(sockaddr_un));
  CHECK(fits->addr.sun_path[kMaxUnixPath] == '\0');
  auto over = unix_path_address(longest + "p");
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().message == "unix socket path " + longest + "p is longer than 107 bytes");
  CHECK(over.error().sys_errno == 0);
  CHECK(unix_path_address(longest + "p", "control socket path").error().message ==
        "control socket path " + longest + "p is longer than 107 bytes");
}

TEST_CASE("an empty path, or one with a NUL byte in it, is refused") {
  CHECK(unix_path_address("").error().message == "unix socket path is empty");
  CHECK(unix_path_address(std::string("/tmp/a\0b", 8)).error().message ==
        "unix socket path /tmp/a contains a NUL byte");
}

TEST_CASE("an abstract address is a leading NUL and the name, with no NUL after it") {
  auto a = unix_abstract_address("baton/1/notify");
  REQUIRE(a.ok());
  CHECK(a->addr.sun_family == AF_UNIX);
  CHECK(a->addr.sun_path[0] == '\0');
  CHECK(std::string(a->addr.sun_path + 1, 14) == "baton/1/notify");
  CHECK(a->length == kOffset + 1 + 14);
  // Any bytes, NUL included, are part of an abstract name.
  auto with_nul = unix_abstract_address(std::string("a\0b", 3));
  REQUIRE(with_nul.ok());
  CHECK(with_nul->length == kOffset + 1 + 3);
  // The empty name is a name too (distinct from autobind, which passes no path byte).
  CHECK(unix_abstract_address("")->length == kOffset + 1);
}

TEST_CASE("an abstract name of 107 bytes fits; 108 is refused") {
  std::string longest(kMaxUnixPath, 'n');
  auto fits = unix_abstract_address(longest);
  REQUIRE(fits.ok());
  CHECK(fits->length == sizeof(sockaddr_un));
  auto over = unix_abstract_address(longest + "n");
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().message == "unix socket name @" + longest + "n is longer than 107 bytes");
  CHECK(unix_abstract_address(longest + "n", "notify socket name").error().message ==
        "notify socket name @" + longest + "n is longer than 107 bytes");
}

TEST_CASE("unix_address: '@name' is abstract, anything else a path") {
  auto abstract = unix_address("@name");
  REQUIRE(abstract.ok());
  CHECK(abstract->addr.sun_path[0] == '\0');
  CHECK(abstract->length == kOffset + 1 + 4);
  auto path = unix_address("/run/notify");
  REQUIRE(path.ok());
  CHECK(std::string(path->addr.sun_path) == "/run/notify");
  CHECK(path->length == kOffset + 11 + 1);
  // '@' and 107 more bytes: a 107-byte abstract name, which fits.
  CHECK(unix_address("@" + std::string(kMaxUnixPath, 'n')).ok());
  CHECK_FALSE(unix_address("@" + std::string(kMaxUnixPath + 1, 'n')).ok());
}

TEST_CASE("the kernel binds exactly the name built, up to the longest, and unix_name_of reads it") {
  std::string name = "baton-unit-" + std::to_string(getpid());
  UnixName got = bound_name(unix_abstract_address(name).value());
  CHECK(got.abstract);
  CHECK(got.path == name);

  std::string longest = name + std::string(kMaxUnixPath - name.size(), 'n');
  got = bound_name(unix_abstract_address(longest).value());
  CHECK(got.abstract);
  CHECK(got.path == longest);

  char dir_template[] = "/tmp/baton-unit-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  std::string dir = dir_template;
  std::string path = dir + "/" + std::string(kMaxUnixPath - dir.size() - 1, 's');
  REQUIRE(path.size() == kMaxUnixPath);
  got = bound_name(unix_path_address(path).value());
  CHECK_FALSE(got.abstract);
  CHECK(got.path == path);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("unix_name_of an unnamed socket is an empty path") {
  sockaddr_un unnamed{};
  unnamed.sun_family = AF_UNIX;
  UnixName got = unix_name_of(unnamed, sizeof(sa_family_t));
  CHECK(got.path.empty());
  CHECK_FALSE(got.abstract);
}

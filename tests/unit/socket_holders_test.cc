// Unit tests for socket_holders: real sockets on loopback held by real child
// processes, which block on a pipe so that each test decides when they end.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "listen_socket.h"
#include "socket_holders.h"
#include "socket_spec.h"
#include "unique_fd.h"

/// Prints vectors of inodes and pids in failed checks. Integers only: in a
/// unity batch this reaches the files after this one, whose vectors of
/// other types fmt may not know how to print.
template <class T>
requires std::is_integral_v<T>
struct doctest::StringMaker<std::vector<T>> {
  static doctest::String convert(const std::vector<T>& v) {
    return fmt::format("{{{}}}", fmt::join(v, ", ")).c_str();
  }
};

using baton::find_socket_holders;
using baton::inodes_bound_to;
using baton::ListenSocket;
using baton::SocketHolder;
using baton::SocketSpec;
using baton::UniqueFd;

namespace {

constexpr int kTimeoutMs = 5000;
/// Where a child keeps its fds: the ready pipe, the release pipe, then the
/// sockets it holds, clear of anything the test process has open.
constexpr int kReadyFd = 199, kReleaseFd = 200, kFirstHeldFd = 201;

/// A child process holding dups of some sockets until release(): it blocks
/// reading a pipe and exits when the test closes the other end. With `argv`
/// it execs that program instead, with the pipe as stdin (so "/bin/sh -c
/// 'read x'" behaves the same). The constructor returns once the child is
/// set up (or has exec'd): it closes a CLOEXEC "ready" pipe.
class HoldingChild {
 public:
  explicit HoldingChild(const std::vector<int>& fds, bool new_session = false,
                        std::vector<std::string> argv = {}) {
    int release[2], ready[2];
    REQUIRE(pipe2(release, O_CLOEXEC) == 0);
    UniqueFd release_read(release[0]);
    release_.reset(release[1]);
    REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
    UniqueFd ready_read(ready[0]), ready_write(ready[1]);
    std::vector<char*> args;  // built before fork: the child must not allocate
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      run_child(release_read.get(), ready_write.get(), fds, new_session,
                argv.empty() ? nullptr : args.data());
    }
    ready_write.reset();
    pollfd p{ready_read.get(), POLLIN, 0};
    char byte;
    bool ready_ok = poll(&p, 1, kTimeoutMs) == 1 && read(ready_read.get(), &byte, 1) == 0;
    if (!ready_ok) ::kill(pid_, SIGKILL), reap();
    REQUIRE(ready_ok);
  }
  ~HoldingChild() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    reap();
  }
  HoldingChild(const HoldingChild&) = delete;
  HoldingChild& operator=(const HoldingChild&) = delete;

  pid_t pid() const { return pid_; }

  /// Lets the child exit and reaps it; SIGKILL if it has not exited in time.
  void release() {
    release_.reset();
    // glibc 2.36's <sys/pidfd.h> lacks extern "C", so call it directly.
    UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
    REQUIRE(pidfd.valid());
    pollfd p{pidfd.get(), POLLIN, 0};
    if (poll(&p, 1, kTimeoutMs) != 1) ::kill(pid_, SIGKILL);
    reap();
  }

 private:
  [[noreturn]] static void run_child(int release, int ready, const std::vector<int>& fds,
                                     bool new_session, char* const* argv) {
    if (new_session && setsid() < 0) _exit(111);
    if (dup3(ready, kReadyFd, O_CLOEXEC) < 0 || dup2(release, kReleaseFd) < 0) _exit(111);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (dup2(fds[i], kFirstHeldFd + static_cast<int>(i)) < 0) _exit(111);
    }
    close_range(3, kReadyFd - 1, 0);
    close_range(kFirstHeldFd + static_cast<unsigned>(fds.size()), ~0U, 0);
    if (argv) {
      dup2(kReleaseFd, 0);
      execv(argv[0], argv);
      _exit(127);
    }
    close_range(kReadyFd, kReadyFd, 0);
    char byte;
    while (read(kReleaseFd, &byte, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }

  /// Waits for the child; CHECK, not REQUIRE: it also runs in the destructor.
  void reap() {
    if (pid_ <= 0) return;
    int status = 0;
    CHECK(waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
  }

  pid_t pid_ = -1;
  UniqueFd release_;
};

ListenSocket bind_ok(const std::string& url) {
  auto spec = baton::parse_socket_url(url);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  auto sock = ListenSocket::bind(*spec);
  REQUIRE_MESSAGE(sock.ok(), sock.error().message);
  return std::move(sock).value();
}

SocketSpec spec_of(const std::string& url) {
  auto spec = baton::parse_socket_url(url);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  return *spec;
}

ino_t inode_of(int fd) {
  auto inode = baton::socket_inode(fd);
  REQUIRE_MESSAGE(inode.ok(), inode.error().message);
  return *inode;
}

uint16_t port_of(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

/// A connection to `listener` and its accepted end, which shares the
/// listener's local address.
struct Connection {
  UniqueFd client, accepted;
};

Connection connect_to(const ListenSocket& listener) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  REQUIRE(getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
  Connection c;
  c.client.reset(socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(c.client.valid());
  REQUIRE(connect(c.client.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
  c.accepted.reset(accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(c.accepted.valid());
  return c;
}

using Inodes = std::vector<ino_t>;

}  // namespace

TEST_CASE("socket holders: socket_inode is the inode /proc shows for the fd") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  char link[64] = {};
  std::string path = fmt::format("/proc/self/fd/{}", listener.fd());
  REQUIRE(readlink(path.c_str(), link, sizeof link - 1) > 0);
  CHECK(std::string(link) == fmt::format("socket:[{}]", inode_of(listener.fd())));

  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  auto not_socket = baton::socket_inode(read_end.get());
  REQUIRE_FALSE(not_socket.ok());
  CHECK(not_socket.error().sys_errno == ENOTSOCK);
  CHECK(not_socket.error().message ==
        fmt::format("fd {}: Socket operation on non-socket", read_end.get()));
  int closed = read_end.get();
  read_end.reset();
  CHECK(baton::socket_inode(closed).error().sys_errno == EBADF);
}

TEST_CASE("socket holders: a child holding a dup of a listener is found by pid, group, command") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  ino_t inode = inode_of(listener.fd());
  HoldingChild child({listener.fd()}, false, {"/bin/sh", "-c", "read x"});
  auto holders = find_socket_holders({inode}, {getpid()});
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].pid == child.pid());
  CHECK(holders[0].pgid == getpgrp());
  CHECK(holders[0].command == "/bin/sh -c read x");
  CHECK(holders[0].inodes == Inodes{inode});
  CHECK(baton::describe_holders(holders) == fmt::format("pid {} (/bin/sh -c read x)", child.pid()));
}

TEST_CASE("socket holders: a child in its own session is found; excluded pids are not") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  ino_t inode = inode_of(listener.fd());
  HoldingChild child({listener.fd()}, true);
  auto holders = find_socket_holders({inode}, {getpid()});
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].pid == child.pid());
  CHECK(holders[0].pgid == child.pid());

  auto with_self = find_socket_holders({inode}, {});
  REQUIRE(with_self.size() == 2);
  std::vector<pid_t> pids = {with_self[0].pid, with_self[1].pid};
  std::vector<pid_t> expected = {std::min(getpid(), child.pid()), std::max(getpid(), child.pid())};
  CHECK(pids == expected);
  // The forked child has not exec'd: it shows the test's own command line.
  CHECK(with_self[0].command == with_self[1].command);
  CHECK(find_socket_holders({inode}, {getpid(), child.pid()}).empty());
  CHECK(find_socket_holders({}, {}).empty());
}

TEST_CASE("socket holders: a child that has exited is no longer reported") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  ino_t inode = inode_of(listener.fd());
  HoldingChild child({listener.fd()});
  REQUIRE(find_socket_holders({inode}, {getpid()}).size() == 1);
  child.release();
  CHECK(find_socket_holders({inode}, {getpid()}).empty());
}

TEST_CASE("socket holders: each holder lists the sockets it holds once, holders sorted by pid") {
  ListenSocket a = bind_ok("tcp://127.0.0.1:0");
  ListenSocket b = bind_ok("udp://127.0.0.1:0");
  ListenSocket unrelated = bind_ok("tcp://127.0.0.1:0");
  ino_t ia = inode_of(a.fd()), ib = inode_of(b.fd());
  HoldingChild both({b.fd(), a.fd(), a.fd(), unrelated.fd()});
  HoldingChild only_b({b.fd()});
  auto holders = find_socket_holders({ib, ia, ib}, {getpid()});
  REQUIRE(holders.size() == 2);
  CHECK(holders[0].pid < holders[1].pid);
  const SocketHolder& h_both = holders[0].pid == both.pid() ? holders[0] : holders[1];
  const SocketHolder& h_b = holders[0].pid == both.pid() ? holders[1] : holders[0];
  CHECK(h_both.pid == both.pid());
  CHECK(h_b.pid == only_b.pid());
  CHECK(h_both.inodes == Inodes{std::min(ia, ib), std::max(ia, ib)});
  CHECK(h_b.inodes == Inodes{ib});
}

TEST_CASE("socket holders: a command is one printable line of at most 120 bytes and '...'") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  ino_t inode = inode_of(listener.fd());
  // "/bin/sh -c read x new?line " is 27 bytes; the 'é' straddles byte 120.
  std::string filler = std::string(92, 'a') + "\xc3\xa9" + std::string(50, 'b');
  HoldingChild child({listener.fd()}, false, {"/bin/sh", "-c", "read x", "new\nline", filler});
  auto holders = find_socket_holders({inode}, {getpid()});
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].command == "/bin/sh -c read x new?line " + std::string(92, 'a') + "...");
}

TEST_CASE("socket holders: describe_holders lists pid and command") {
  std::vector<SocketHolder> holders = {{123, 123, "sleep 300", {1}},
                                       {456, 1, "python3 -m http.server", {1, 2}}};
  CHECK(baton::describe_holders(holders) ==
        "pid 123 (sleep 300), pid 456 (python3 -m http.server)");
  CHECK(baton::describe_holders({}) == "");
}

TEST_CASE("socket holders: inodes_bound_to finds a TCP v4 listener, not its connections") {
  ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
  Connection connection = connect_to(listener);
  Inodes expected = {inode_of(listener.fd())};
  uint16_t port = port_of(listener.fd());
  auto bound = [&](const std::string& host, bool v6only = false) {
    SocketSpec spec = spec_of(fmt::format("tcp://{}:{}", host, port));
    spec.v6only = v6only;
    return inodes_bound_to(spec);
  };
  CHECK(bound("127.0.0.1") == expected);
  CHECK(bound("0.0.0.0") == expected);
  CHECK(bound("[::]") == expected);  // dual-stack [::] needs the v4 port too
  CHECK(bound("[::ffff:127.0.0.1]") == expected);
  CHECK(bound("[::]", true).empty());
  CHECK(bound("127.0.0.2").empty());
  CHECK(bound("[::1]").empty());
  CHECK(inodes_bound_to(spec_of("tcp://127.0.0.1:0")).empty());
}

TEST_CASE("socket holders: inodes_bound_to finds v6 and wildcard listeners") {
  ListenSocket v6 = bind_ok("tcp://[::1]:0");
  uint16_t p6 = port_of(v6.fd());
  Inodes i6 = {inode_of(v6.fd())};
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://[::1]:{}", p6))) == i6);
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://[::]:{}", p6))) == i6);
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://127.0.0.1:{}", p6))).empty());

  ListenSocket any4 = bind_ok("tcp://0.0.0.0:0");
  uint16_t p4 = port_of(any4.fd());
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://127.0.0.1:{}", p4))) ==
        Inodes{inode_of(any4.fd())});

  ListenSocket any6 = bind_ok("tcp://[::]:0");  // dual-stack: blocks v4 binds too
  uint16_t pa = port_of(any6.fd());
  Inodes ia = {inode_of(any6.fd())};
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://127.0.0.1:{}", pa))) == ia);
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://[::1]:{}", pa))) == ia);
}

TEST_CASE("socket holders: inodes_bound_to finds UDP sockets, and only for udp specs") {
  ListenSocket v4 = bind_ok("udp://127.0.0.1:0");
  uint16_t p4 = port_of(v4.fd());
  CHECK(inodes_bound_to(spec_of(fmt::format("udp://127.0.0.1:{}", p4))) ==
        Inodes{inode_of(v4.fd())});
  CHECK(inodes_bound_to(spec_of(fmt::format("tcp://127.0.0.1:{}", p4))).empty());
  ListenSocket v6 = bind_ok("udp://[::1]:0");
  uint16_t p6 = port_of(v6.fd());
  CHECK(inodes_bound_to(spec_of(fmt::format("udp://[::1]:{}", p6))) == Inodes{inode_of(v6.fd())});
}

TEST_CASE("socket holders: inodes_bound_to finds unix path and abstract listeners") {
  char dir_template[] = "/tmp/baton-holders-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  std::string dir = dir_template;
  {
    std::string path = dir + "/app sock";  // the path column is printed raw, spaces and all
    ListenSocket by_path = bind_ok("unix:" + path);
    Connection connection = connect_to(by_path);
    CHECK(inodes_bound_to(spec_of("unix:" + path)) == Inodes{inode_of(by_path.fd())});
    CHECK(inodes_bound_to(spec_of("unix:" + dir + "/other")).empty());

    std::string name = fmt::format("baton-holders-{}", getpid());
    ListenSocket abstract = bind_ok("unix:@" + name);
    CHECK(inodes_bound_to(spec_of("unix:@" + name)) == Inodes{inode_of(abstract.fd())});
    CHECK(inodes_bound_to(spec_of("unix:@" + name + "-other")).empty());
  }
  CHECK(rmdir(dir.c_str()) == 0);
}

TEST_CASE("socket holders: a child keeping a listener after baton closed it is named") {
  std::string url;
  ino_t inode = 0;
  std::optional<HoldingChild> child;
  {
    ListenSocket listener = bind_ok("tcp://127.0.0.1:0");
    url = fmt::format("tcp://127.0.0.1:{}", port_of(listener.fd()));
    inode = inode_of(listener.fd());
    child.emplace(std::vector<int>{listener.fd()}, true,
                  std::vector<std::string>{"/bin/sh", "-c", "read x"});
  }
  auto again = ListenSocket::bind(spec_of(url));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().sys_errno == EADDRINUSE);
  Inodes bound = inodes_bound_to(spec_of(url));
  CHECK(bound == Inodes{inode});
  CHECK(baton::describe_holders(find_socket_holders(bound, {getpid()})) ==
        fmt::format("pid {} (/bin/sh -c read x)", child->pid()));
  child->release();
  CHECK(ListenSocket::bind(spec_of(url)).ok());
}

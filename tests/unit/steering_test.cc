// Per-generation listeners on real sockets (loopback only): where the kernel
// sends new connections and datagrams as generations join, switch and
// leave (SocketSet::prepare, switch_to), accept-queue lengths, unix private
// paths, the shared fallbacks and probe targets, tcp_migrate_req in a
// network namespace of its own, and the kernel facts all of it relies on.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config_fixture.h"
#include "listen_socket.h"
#include "socket_set.h"
#include "steering.h"
#include "unique_fd.h"
#include "unix_address.h"

using baton::ListenerMode;
using baton::ListenSocket;
using baton::SharedSocket;
using baton::SocketKind;
using baton::SocketSet;
using baton::SocketSpec;
using baton::UniqueFd;

namespace {

constexpr int kTimeoutMs = 5000;
constexpr int kConnections = 100;
constexpr const char* kProbe = baton::kProbeSource;

SocketSpec spec_of(const std::string& url, const std::string& name = "http") {
  auto spec = baton::parse_socket_url(url);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  spec->name = name;
  return *spec;
}

/// One generation's socket for `spec`, prepared in `set`.
SharedSocket generation(SocketSet& set, const SocketSpec& spec,
                        ListenerMode mode = ListenerMode::kPerGeneration) {
  auto sockets = set.prepare({spec}, mode);
  REQUIRE_MESSAGE(sockets.ok(), sockets.error().message);
  REQUIRE(sockets->size() == 1);
  return sockets->front();
}

void switch_ok(const SharedSocket& s) {
  baton::Status st = baton::switch_to({s});
  REQUIRE_MESSAGE(st.ok(), st.error().message);
}

sockaddr_in ipv4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, ip, &a.sin_addr) == 1);
  return a;
}

/// A tcp connection (or a connected udp socket) from `source` (nullptr: the
/// kernel's choice, 127.0.0.1) to ip:port.
UniqueFd connect_from(const char* source, uint16_t port, int type = SOCK_STREAM,
                      const char* ip = "127.0.0.1") {
  UniqueFd fd(socket(AF_INET, type | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  if (source) {
    sockaddr_in from = ipv4(source, 0);
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof from) == 0);
  }
  sockaddr_in to = ipv4(ip, port);
  REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  return fd;
}

UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof a.sun_path);
  path.copy(a.sun_path, path.size());
  REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

/// Whether `condition` holds within kTimeoutMs, checked every millisecond
/// (for what no fd reports: a queue reaching a length). No doctest
/// assertion: the forked child uses it too.
bool eventually(const std::function<bool()>& condition) {
  for (int waited = 0; !condition(); ++waited) {
    if (waited >= kTimeoutMs) return false;
    poll(nullptr, 0, 1);
  }
  return true;
}

/// Takes one connection (stream) or datagram (udp) from `fd`.
void take_one(int fd, int type) {
  if (type == SOCK_DGRAM) {
    char byte;
    REQUIRE(recv(fd, &byte, 1, MSG_DONTWAIT) == 1);
  } else {
    UniqueFd accepted(accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(accepted.valid());
  }
}

/// Where `n` arrivals went: polls the listeners (bounded) and takes each
/// connection or datagram from the one that has it, until `n` are taken;
/// then none may have anything left. "100/0": 100 on the first, 0 on the
/// second.
std::string taken_by(const std::vector<int>& fds, int n, int type) {
  std::vector<int> counts(fds.size(), 0);
  std::vector<pollfd> polls;
  for (int fd : fds) polls.push_back({fd, POLLIN, 0});
  for (int taken = 0; taken < n;) {
    int ready = poll(polls.data(), polls.size(), kTimeoutMs);
    REQUIRE_MESSAGE(ready > 0, fmt::format("only {} of {} arrived", taken, n));
    for (size_t i = 0; i < polls.size(); ++i) {
      if (!(polls[i].revents & POLLIN)) continue;
      take_one(fds[i], type);
      ++counts[i];
      ++taken;
    }
  }
  CHECK(poll(polls.data(), polls.size(), 0) == 0);
  return fmt::format("{}", fmt::join(counts, "/"));
}

std::vector<int> fds_of(const std::vector<SharedSocket>& sockets) {
  std::vector<int> fds;
  for (const SharedSocket& s : sockets) fds.push_back(s->fd());
  return fds;
}

/// Where `n` connections (tcp) or datagrams (udp) from `source` to
/// 127.0.0.1 on the listeners' port land among `listeners`.
std::string spread(const std::vector<SharedSocket>& listeners, const char* source,
                   int n = kConnections) {
  uint16_t port = listeners.front()->bound().port;
  bool udp = listeners.front()->spec().kind == SocketKind::kUdp;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(connect_from(source, port, udp ? SOCK_DGRAM : SOCK_STREAM));
    // One socket per datagram too: each has its own source port, so a hash
    // fallback would spread them (a program decides by address alone).
    if (udp) REQUIRE(send(clients.back().get(), "x", 1, 0) == 1);
  }
  return taken_by(fds_of(listeners), n, udp ? SOCK_DGRAM : SOCK_STREAM);
}

/// Attaches "every packet → `index`" to the group of `fd`.
void attach_constant(int fd, uint32_t index) {
  sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, index}};
  sock_fprog prog{1, code};
  REQUIRE(setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0);
}

/// A reuseport socket of `type` on 127.0.0.1:port (0: the kernel picks),
/// listening for tcp (which joins the group then) when `join`.
UniqueFd reuseport_socket(int type, uint16_t port, bool join = true) {
  UniqueFd fd(socket(AF_INET, type | SOCK_CLOEXEC, 0));
  int on = 1;
  REQUIRE(setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0);
  sockaddr_in a = ipv4("127.0.0.1", port);
  REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  if (type == SOCK_STREAM && join) REQUIRE(listen(fd.get(), 128) == 0);
  return fd;
}

uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return ntohs(a.sin_port);
}

std::string raw_spread(const std::vector<int>& fds, int type, int n = 20) {
  std::vector<UniqueFd> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(connect_from(nullptr, port_of(fds.front()), type));
    if (type == SOCK_DGRAM) REQUIRE(send(clients.back().get(), "x", 1, 0) == 1);
  }
  return taken_by(fds, n, type);
}

/// tcp: two generations, a switch, the old one closing while an app still
/// holds it, and a third generation: public and probe traffic land exactly.
void check_generations(const std::string& url) {
  SocketSet set;
  SocketSpec spec = spec_of(url);
  SharedSocket first = generation(set, spec);
  CHECK(first->shared_reason().empty());
  CHECK(first->is_serving());
  CHECK(spread({first}, nullptr) == "100");
  CHECK(spread({first}, kProbe) == "100");  // no candidate: probes reach the serving one

  SharedSocket second = generation(set, spec);
  REQUIRE(second != first);
  CHECK(second->bound() == first->bound());  // port 0: the port the kernel chose
  CHECK(second->shared_reason().empty());
  CHECK_FALSE(second->is_serving());
  CHECK(spread({first, second}, nullptr) == "100/0");
  CHECK(spread({first, second}, kProbe) == "0/100");

  switch_ok(second);
  CHECK(second->is_serving());
  CHECK(spread({first, second}, nullptr) == "0/100");
  CHECK(spread({first, second}, kProbe) == "0/100");

  // An app of the old generation still holds its listener: baton's copy
  // closing takes it out of the group all the same (tcp), and the serving
  // one moves into slot 0.
  UniqueFd app_copy(fcntl(first->fd(), F_DUPFD_CLOEXEC, 0));
  REQUIRE(app_copy.valid());
  first.reset();
  CHECK(second->group()->slots() == std::vector<int>{second->fd()});
  CHECK(spread({second}, nullptr) == "100");
  CHECK(spread({second}, kProbe) == "100");

  SharedSocket third = generation(set, spec);
  CHECK(spread({second, third}, nullptr) == "100/0");
  CHECK(spread({second, third}, kProbe) == "0/100");
  switch_ok(third);
  CHECK(spread({second, third}, nullptr) == "0/100");
  // Shut down: the old app's accept() fails at once.
  CHECK(accept4(app_copy.get(), nullptr, nullptr, SOCK_NONBLOCK) < 0);
  CHECK(errno == EINVAL);
}

}  // namespace

TEST_CASE(
    "steering: tcp on 127.0.0.1: public connections reach the serving generation, probes the "
    "candidate") {
  check_generations("tcp://127.0.0.1:0");
}

/// How many of `n` public connections (tcp) or datagrams (udp) reached the
/// second of two listeners, sent kConnections at a time (a udp socket's
/// receive buffer holds a few hundred datagrams).
int second_of(const SharedSocket& first, const SharedSocket& second, int n) {
  int total = 0;
  for (int sent = 0; sent < n; sent += kConnections) {
    std::string counts = spread({first, second}, nullptr, kConnections);
    total += std::stoi(counts.substr(counts.find('/') + 1));
  }
  return total;
}

TEST_CASE("steering: a candidate's share of public connections is drawn at random per arrival") {
  for (std::string url : {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"}) {
    CAPTURE(url);
    SocketSet set;
    SocketSpec spec = spec_of(url);
    SharedSocket first = generation(set, spec);
    SharedSocket second = generation(set, spec);
    // 2,000 arrivals at 25%: the count is binomial, sd 19.4; 400..600 is
    // over 5 sd either side.
    REQUIRE(baton::share_with({second}, 2'500).ok());
    int got = second_of(first, second, 2'000);
    CHECK(got >= 400);
    CHECK(got <= 600);
    CHECK(spread({first, second}, kProbe) == "0/100");  // probes: the candidate alone
    REQUIRE(baton::share_with({second}, baton::kShareScale).ok());
    CHECK(spread({first, second}, nullptr) == "0/100");
    REQUIRE(baton::share_with({second}, 0).ok());
    CHECK(spread({first, second}, nullptr) == "100/0");
    // The serving socket is skipped; a socket that is no candidate is refused.
    REQUIRE(baton::share_with({first}, 5'000).ok());
    CHECK(spread({first, second}, nullptr) == "100/0");
    REQUIRE(baton::share_with({second}, 5'000).ok());
    switch_ok(second);  // the switch takes every public connection
    CHECK(spread({first, second}, nullptr) == "0/100");
    SharedSocket third = generation(set, spec);
    CHECK(spread({second, third}, nullptr) == "100/0");  // a newcomer starts at 0
  }
}

TEST_CASE("steering: tcp on 0.0.0.0 is steered the same") {
  check_generations("tcp://0.0.0.0:0");
}

TEST_CASE("steering: tcp on dual-stack [::] steers v4 clients the same") {
  check_generations("tcp://[::]:0");
}

TEST_CASE("steering: udp datagrams from 127.0.0.2 reach the candidate, others the serving one") {
  // udp sockets leave the group when their last fd closes, so the app's
  // copy in check_generations would keep the old one in: here it has none.
  SocketSet set;
  SocketSpec spec = spec_of("udp://127.0.0.1:0");
  SharedSocket first = generation(set, spec);
  SharedSocket second = generation(set, spec);
  CHECK(spread({first, second}, nullptr) == "100/0");
  CHECK(spread({first, second}, kProbe) == "0/100");
  switch_ok(second);
  CHECK(spread({first, second}, nullptr) == "0/100");

  SUBCASE("the old one closes, then a third joins") {
    first.reset();
    CHECK(spread({second}, nullptr) == "100");
    SharedSocket third = generation(set, spec);
    CHECK(spread({second, third}, nullptr) == "100/0");
    CHECK(spread({second, third}, kProbe) == "0/100");
  }
  SUBCASE("a third joins while the old one is still in the group, then the old one closes") {
    // udp keeps retired members: [first, second, third]; first leaving
    // moves third into slot 0, and the program follows.
    SharedSocket third = generation(set, spec);
    CHECK(second->group()->slots() == std::vector<int>{first->fd(), second->fd(), third->fd()});
    CHECK(spread({first, second, third}, nullptr) == "0/100/0");
    CHECK(spread({first, second, third}, kProbe) == "0/0/100");
    first.reset();
    CHECK(second->group()->slots() == std::vector<int>{third->fd(), second->fd()});
    CHECK(spread({second, third}, nullptr) == "100/0");
    CHECK(spread({second, third}, kProbe) == "0/100");
  }
}

TEST_CASE("steering: a candidate closed without a switch leaves the serving one every connection") {
  for (std::string url : {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"}) {
    CAPTURE(url);
    SocketSet set;
    SocketSpec spec = spec_of(url);
    SharedSocket serving = generation(set, spec);
    SharedSocket candidate = generation(set, spec);
    CHECK(spread({serving, candidate}, kProbe, 10) == "0/10");
    candidate.reset();  // rollback
    CHECK(serving->group()->slots() == std::vector<int>{serving->fd()});
    CHECK(spread({serving}, nullptr) == "100");
    CHECK(spread({serving}, kProbe) == "100");
    // The next candidate joins behind it, and the serving one keeps slot 0.
    SharedSocket next = generation(set, spec);
    CHECK(serving->group()->slots() == std::vector<int>{serving->fd(), next->fd()});
    CHECK(spread({serving, next}, nullptr) == "100/0");
    CHECK(spread({serving, next}, kProbe) == "0/100");
  }
}

TEST_CASE("steering: queued_connections counts the accept queue (tcp, unix) and 0 for udp") {
  config_fixture::TempDir dir;
  for (std::string url :
       {std::string("tcp://127.0.0.1:0"), "unix:" + (dir.path / "q.sock").string()}) {
    CAPTURE(url);
    SocketSet set;
    SharedSocket sock = generation(set, spec_of(url));
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 5; ++i) {
      clients.push_back(sock->spec().kind == SocketKind::kUnix
                            ? connect_unix(sock->path())
                            : connect_from(nullptr, sock->bound().port));
    }
    // Loopback tcp may finish the handshake just after connect() returns.
    CHECK(eventually([&] { return baton::queued_connections({sock}) >= 5; }));
    CHECK(baton::queued_connections({sock}) == 5);
    take_one(sock->fd(), SOCK_STREAM);
    CHECK(baton::queued_connections({sock}) == 4);
    CHECK(baton::queued_connections({sock, sock}) == 8);
  }
  SocketSet set;
  SharedSocket udp = generation(set, spec_of("udp://127.0.0.1:0"));
  UniqueFd client = connect_from(nullptr, udp->bound().port, SOCK_DGRAM);
  REQUIRE(send(client.get(), "x", 1, 0) == 1);
  CHECK(baton::queued_connections({udp}) == 0);
}

namespace {

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  REQUIRE(S_ISSOCK(st.st_mode));
  return st.st_mode & 07777;
}

ino_t inode_of_file(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE(
    "steering: unix path: the candidate listens on a private path until the switch renames it") {
  config_fixture::TempDir dir;
  std::string public_path = (dir.path / "app.sock").string();
  SocketSpec spec = spec_of("unix:" + public_path);
  spec.mode = 0640;
  SocketSet set;
  SharedSocket first = generation(set, spec);
  CHECK(first->shared_reason().empty());
  CHECK(first->path() == public_path);
  CHECK(mode_of(public_path) == 0640);
  ino_t first_inode = inode_of_file(public_path);

  SharedSocket second = generation(set, spec);
  std::string private_path = public_path + ".baton1";
  CHECK(second->path() == private_path);
  CHECK(mode_of(private_path) == 0640);
  auto target = second->probe_target();
  REQUIRE_MESSAGE(target.ok(), target.error().message);
  CHECK(target->target.path == private_path);
  CHECK(target->source.empty());
  CHECK(first->probe_target().ok());  // the public path still reaches it alone

  UniqueFd queued_on_first = connect_unix(public_path);
  CHECK(taken_by({first->fd(), second->fd()}, 1, SOCK_STREAM) == "1/0");
  UniqueFd probe = connect_unix(private_path);
  CHECK(taken_by({first->fd(), second->fd()}, 1, SOCK_STREAM) == "0/1");

  UniqueFd waiting = connect_unix(public_path);  // queued on the old one before the switch
  switch_ok(second);
  CHECK_FALSE(exists(private_path));
  CHECK(second->path() == public_path);
  CHECK(second->probe_target()->target.path == public_path);
  CHECK(first->probe_target().error().message ==
        fmt::format("http: probes to {} reach another generation's listener now", public_path));
  CHECK(inode_of_file(public_path) != first_inode);
  CHECK(mode_of(public_path) == 0640);
  UniqueFd after = connect_unix(public_path);
  // The old socket still has (and gives out) the connection queued on it.
  CHECK(taken_by({first->fd(), second->fd()}, 2, SOCK_STREAM) == "1/1");

  first.reset();  // renamed over: the public file is the new one's, and stays
  CHECK(exists(public_path));
  [[maybe_unused]] UniqueFd again = connect_unix(public_path);
  CHECK(taken_by({second->fd()}, 1, SOCK_STREAM) == "1");

  SharedSocket rolled_back = generation(set, spec);
  CHECK(rolled_back->path() == public_path + ".baton2");
  CHECK(exists(public_path + ".baton2"));
  rolled_back.reset();
  CHECK_FALSE(exists(public_path + ".baton2"));
  CHECK(exists(public_path));

  second.reset();  // the owner of the public path removes it
  CHECK_FALSE(exists(public_path));
}

TEST_CASE("steering: unix path without a configured mode: the private file gets the public one's") {
  config_fixture::TempDir dir;
  std::string public_path = (dir.path / "app.sock").string();
  SocketSpec spec = spec_of("unix:" + public_path);
  SocketSet set;
  SharedSocket first = generation(set, spec);
  REQUIRE(chmod(public_path.c_str(), 0604) == 0);
  SharedSocket second = generation(set, spec);
  CHECK(mode_of(second->path()) == 0604);
  CHECK(second->path().starts_with(dir.path.string() + "/"));
}

TEST_CASE("steering: a unix path too long for a private path beside it is shared") {
  config_fixture::TempDir dir;
  std::string public_path = dir.path.string() + "/";
  public_path += std::string(baton::kMaxUnixPath - public_path.size() - 3, 's');
  SocketSpec spec = spec_of("unix:" + public_path);
  SocketSet set;
  SharedSocket first = generation(set, spec);
  CHECK(first->shared_reason().empty());
  SharedSocket second = generation(set, spec);
  CHECK(second == first);
  CHECK(second->shared_reason() ==
        fmt::format("a new listener's private path ({}.baton1) would be longer than 107 bytes",
                    public_path));
  CHECK(generation(set, spec) == first);
}

TEST_CASE("steering: sockets that cannot be steered are shared, with the reason") {
  SocketSet set;
  struct Case {
    std::string url;
    ListenerMode mode;
    bool reuseport;
    std::string reason;
  };
  std::string abstract = fmt::format("unix:@baton-steering-test-{}", getpid());
  for (const Case& c : {
           Case{abstract, ListenerMode::kPerGeneration, false,
                "an abstract unix socket cannot be renamed"},
           Case{"tcp://127.0.0.1:0", ListenerMode::kPerGeneration, true,
                "reuseport = true lets the app add copies of its own"},
           Case{"tcp://127.0.0.1:0", ListenerMode::kShared, false, "listeners = \"shared\""},
       }) {
    CAPTURE(c.url);
    SocketSpec spec = spec_of(c.url);
    spec.reuseport = c.reuseport;
    SharedSocket first = generation(set, spec, c.mode);
    CHECK(first->shared_reason() == c.reason);
    CHECK(first->group() == nullptr);
    CHECK(first->probe_target().error().message == "http: shared: " + c.reason);
    spec.port = first->bound().port;
    CHECK(generation(set, spec, c.mode) == first);
    CHECK(baton::switch_to({first}).ok());  // skipped
  }
}

TEST_CASE("steering: adopted sockets are shared, for the reason the caller gives") {
  auto bound = ListenSocket::bind(spec_of("tcp://127.0.0.1:0"));
  REQUIRE(bound.ok());
  auto adopted = std::make_shared<ListenSocket>(std::move(*bound));
  SocketSet set;
  SUBCASE("from systemd (the default)") {
    set.adopt({adopted});
    CHECK(adopted->shared_reason() == "taken from systemd");
  }
  SUBCASE("as the caller says") {
    set.adopt({adopted}, "taken over from pid 42");
    CHECK(adopted->shared_reason() == "taken over from pid 42");
  }
  SocketSpec spec = spec_of(fmt::format("tcp://127.0.0.1:{}", adopted->bound().port));
  CHECK(generation(set, spec) == adopted);
}

TEST_CASE(
    "steering: a shared prepare of an address with listeners of its own gets the serving one") {
  SocketSet set;
  SocketSpec spec = spec_of("tcp://127.0.0.1:0");
  SharedSocket first = generation(set, spec);
  SharedSocket candidate = generation(set, spec);
  CHECK(generation(set, spec, ListenerMode::kShared) == first);
  switch_ok(candidate);
  CHECK(generation(set, spec, ListenerMode::kShared) == candidate);
  CHECK(candidate->is_serving());
}

TEST_CASE("steering: probe targets") {
  SocketSet set;
  SUBCASE("0.0.0.0 and dual-stack :: are probed on 127.0.0.1 from 127.0.0.2") {
    for (const char* url : {"tcp://0.0.0.0:0", "tcp://[::]:0"}) {
      SharedSocket sock = generation(set, spec_of(url));
      auto target = sock->probe_target();
      REQUIRE_MESSAGE(target.ok(), target.error().message);
      CHECK(target->target.to_string() == fmt::format("127.0.0.1:{}", sock->bound().port));
      CHECK(target->source == "127.0.0.2");
    }
  }
  SUBCASE("a 127.x listener is probed on its own address") {
    SharedSocket sock = generation(set, spec_of("tcp://127.0.0.5:0"));
    auto target = sock->probe_target();
    REQUIRE_MESSAGE(target.ok(), target.error().message);
    CHECK(target->target == sock->bound());
  }
  SUBCASE("udp, ::1 and v6only :: cannot be probed") {
    SharedSocket udp = generation(set, spec_of("udp://127.0.0.1:0", "dns"));
    CHECK(udp->probe_target().error().message == "dns: udp cannot be probed");
    SharedSocket v6 = generation(set, spec_of("tcp://[::1]:0"));
    CHECK(v6->probe_target().error().message ==
          fmt::format("http: [::1]:{} is not reachable from 127.0.0.2: probes need a 127.x, "
                      "0.0.0.0 or dual-stack :: listener",
                      v6->bound().port));
    SocketSpec only6 = spec_of("tcp://[::]:0", "only6");
    only6.v6only = true;
    CHECK_FALSE(generation(set, only6)->probe_target().ok());
  }
  SUBCASE("while a candidate is joined, probes reach it and not the serving one") {
    SocketSpec spec = spec_of("tcp://127.0.0.1:0");
    SharedSocket serving = generation(set, spec);
    SharedSocket candidate = generation(set, spec);
    CHECK(candidate->probe_target().ok());
    CHECK(serving->probe_target().error().message ==
          fmt::format("http: probes to 127.0.0.1:{} reach another generation's listener now",
                      serving->bound().port));
  }
}

TEST_CASE("steering: a per-generation candidate keeps the address but takes the new options") {
  SocketSet set;
  SocketSpec spec = spec_of("tcp://[::]:0");
  SharedSocket first = generation(set, spec);
  SocketSpec changed = spec;
  changed.port = first->bound().port;
  changed.backlog = 7;
  SharedSocket second = generation(set, changed);
  CHECK(second->bound() == first->bound());
  CHECK(second->spec().backlog == 7);
  changed.v6only = true;
  auto refused = set.prepare({changed}, ListenerMode::kPerGeneration);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("v6only and reuseport cannot change") != std::string::npos);
}

TEST_CASE("nonblocking: every socket baton hands an app has O_NONBLOCK as configured") {
  auto nonblocking = [](int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; };
  SocketSet set;
  SocketSpec spec = spec_of("tcp://127.0.0.1:0");
  SharedSocket blocking = generation(set, spec);
  CHECK_FALSE(nonblocking(blocking->fd()));
  spec.port = blocking->bound().port;
  spec.nonblocking = true;
  SUBCASE("a per-generation listener beside a blocking one") {
    CHECK(nonblocking(generation(set, spec)->fd()));
  }
  SUBCASE("a shared socket: set on the next generation, never cleared") {
    CHECK(generation(set, spec, ListenerMode::kShared) == blocking);
    CHECK(nonblocking(blocking->fd()));
    spec.nonblocking = false;
    CHECK(generation(set, spec, ListenerMode::kShared) == blocking);
    CHECK(nonblocking(blocking->fd()));
  }
  SUBCASE("adopted (from systemd, or from a left-over app)") {
    auto bound = ListenSocket::bind(spec_of("unix:@baton-nonblocking-test"));
    REQUIRE(bound.ok());
    CHECK_FALSE(nonblocking(bound->fd()));
    SocketSpec unix_spec = bound->spec();
    unix_spec.nonblocking = true;
    auto adopted = ListenSocket::adopt(unix_spec, UniqueFd(dup(bound->fd())), "fd 3");
    REQUIRE(adopted.ok());
    CHECK(nonblocking(adopted->fd()));
    CHECK(nonblocking(bound->fd()));  // one open file
  }
}

TEST_CASE("steering: port 0 sockets of one generation each get a listener beside their own") {
  SocketSet set;
  std::vector<SocketSpec> specs{spec_of("tcp://127.0.0.1:0", "a"),
                                spec_of("tcp://127.0.0.1:0", "b")};
  auto first = set.prepare(specs, ListenerMode::kPerGeneration);
  REQUIRE(first.ok());
  specs[0].name = "c";  // renamed: the order decides, but never the same one twice
  specs[1].name = "d";
  auto second = set.prepare(specs, ListenerMode::kPerGeneration);
  REQUIRE(second.ok());
  std::vector<uint16_t> before{(*first)[0]->bound().port, (*first)[1]->bound().port};
  std::vector<uint16_t> after{(*second)[0]->bound().port, (*second)[1]->bound().port};
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  CHECK(before == after);
  CHECK(before[0] != before[1]);
}

TEST_CASE("steering: an address another reuseport socket is bound to is refused with EADDRINUSE") {
  // A left-over app's listener, say: the first listener must not join its
  // group (and baton takes such sockets over on EADDRINUSE).
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    CAPTURE(type);
    UniqueFd other = reuseport_socket(type, 0);
    uint16_t port = port_of(other.get());
    SocketSet set;
    std::string url = fmt::format("{}://127.0.0.1:{}", type == SOCK_DGRAM ? "udp" : "tcp", port);
    auto refused = set.prepare({spec_of(url)}, ListenerMode::kPerGeneration);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().sys_errno == EADDRINUSE);
    CHECK(refused.error().message ==
          fmt::format("http: cannot bind 127.0.0.1:{}: Address already in use", port));
  }
}

// ---------------------------------------------------------------------------
// net.ipv4.tcp_migrate_req, in a network namespace of the test's own.

namespace {

constexpr int kSkipped = 77;
constexpr int kQueued = 5;

/// In a new network namespace (never the host's): lo up, tcp_migrate_req
/// set to `migrate`, two generations, kQueued connections queued on the old
/// listener before the switch; then the old one closes. Returns "" if what
/// followed is what `migrate` says (migrated: accepted by the new listener
/// and alive; not: none there, each reset), else what went wrong.
std::string migrate_in_namespace(bool migrate) {
  if (unshare(CLONE_NEWNET) != 0) return errno == EPERM ? "EPERM" : "unshare failed";
  UniqueFd ctl(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  if (ioctl(ctl.get(), SIOCGIFFLAGS, &ifr) != 0) return "SIOCGIFFLAGS failed";
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(ctl.get(), SIOCSIFFLAGS, &ifr) != 0) return "SIOCSIFFLAGS failed";
  {
    UniqueFd sysctl(open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC));
    if (!sysctl.valid() || write(sysctl.get(), migrate ? "1" : "0", 1) != 1) {
      return "cannot write tcp_migrate_req";
    }
  }
  SocketSet set;
  // No doctest assertion here: this runs in the forked child.
  auto spec = baton::parse_socket_url("tcp://127.0.0.1:0");
  if (!spec) return spec.error().message;
  auto old_gen = set.prepare({*spec}, ListenerMode::kPerGeneration);
  auto new_gen = set.prepare({*spec}, ListenerMode::kPerGeneration);
  if (!old_gen || !new_gen) return "prepare failed";
  SharedSocket old_one = old_gen->front(), new_one = new_gen->front();
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kQueued; ++i) {
    UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(old_one->bound().port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return "connect failed";
    clients.push_back(std::move(c));
  }
  eventually([&] { return baton::queued_connections(*old_one) >= kQueued; });
  if (baton::queued_connections(*old_one) != kQueued) return "not queued on the old listener";
  if (!baton::switch_to({new_one})) return "switch failed";
  old_gen->clear();
  old_one.reset();  // closes: migrates or resets its queue

  int accepted = 0;
  for (pollfd q{new_one->fd(), POLLIN, 0};
       accepted < kQueued && poll(&q, 1, migrate ? kTimeoutMs : 200) == 1;) {
    UniqueFd conn(accept4(new_one->fd(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid() || send(conn.get(), "y", 1, MSG_NOSIGNAL) != 1) return "accept/send failed";
    ++accepted;
  }
  int alive = 0, reset = 0;
  for (UniqueFd& c : clients) {
    pollfd q{c.get(), POLLIN, 0};
    char byte;
    if (poll(&q, 1, kTimeoutMs) != 1) return "a client got nothing";
    ssize_t n = recv(c.get(), &byte, 1, 0);
    if (n == 1) ++alive;
    if (n < 0 && errno == ECONNRESET) ++reset;
  }
  std::string seen = fmt::format("accepted {}, alive {}, reset {}", accepted, alive, reset);
  std::string want = migrate ? fmt::format("accepted {}, alive {}, reset 0", kQueued, kQueued)
                             : fmt::format("accepted 0, alive 0, reset {}", kQueued);
  return seen == want ? "" : seen;
}

std::string host_migrate_req() {
  UniqueFd fd(open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDONLY | O_CLOEXEC));
  char buf[16] = {};
  if (!fd.valid() || read(fd.get(), buf, sizeof buf - 1) <= 0) return "?";
  return buf;
}

/// Runs migrate_in_namespace in a child (the namespace and its sysctl end
/// with it), which writes its result to a pipe; the host's sysctl is the
/// same before and after.
void check_migration(bool migrate) {
  if (geteuid() != 0) {
    MESSAGE("skipped: needs root for a network namespace of its own (euid ", geteuid(), ")");
    return;
  }
  std::string host_before = host_migrate_req();
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string result = migrate_in_namespace(migrate);
    ssize_t n = write(write_end.get(), result.data(), result.size());
    _exit(result == "EPERM" ? kSkipped : n == static_cast<ssize_t>(result.size()) ? 0 : 1);
  }
  write_end.reset();
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  pollfd p{pidfd.get(), POLLIN, 0};
  bool exited = pidfd.valid() && poll(&p, 1, 4 * kTimeoutMs) == 1;
  if (!exited) kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(exited);
  std::string result;
  char buf[256];
  for (ssize_t n; (n = read(read_end.get(), buf, sizeof buf)) > 0;) {
    result.append(buf, static_cast<size_t>(n));
  }
  CHECK(host_migrate_req() == host_before);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == kSkipped) {
    MESSAGE("skipped: unshare(CLONE_NEWNET) is not permitted here (EPERM)");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_MESSAGE(result.empty(), result);
}

}  // namespace

TEST_CASE("steering: with tcp_migrate_req=1 the old listener's queue moves to the new one") {
  check_migration(true);
}

TEST_CASE("steering: with tcp_migrate_req=0 the old listener's queue is reset when it closes") {
  check_migration(false);
}

// ---------------------------------------------------------------------------
// The kernel's reuseport behaviour the model relies on, on raw sockets.

TEST_CASE("kernel: with an index out of range, or no program, the hash picks among all members") {
  // What a stale index does between a member leaving and the new program.
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    CAPTURE(type);
    UniqueFd a = reuseport_socket(type, 0);
    UniqueFd b = reuseport_socket(type, port_of(a.get()));
    for (bool program : {false, true}) {
      if (program) attach_constant(a.get(), 2);
      // 60 arrivals with random source ports: all on one of two members
      // would happen once in 2^59 runs.
      std::string counts = raw_spread({a.get(), b.get()}, type, 60);
      CAPTURE(counts);
      CHECK(counts.find("/0") == std::string::npos);
      CHECK_FALSE(counts.starts_with("0/"));
    }
  }
}

TEST_CASE("kernel: the last member of a reuseport group moves into a leaving member's slot") {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    CAPTURE(type);
    UniqueFd a = reuseport_socket(type, 0);
    attach_constant(a.get(), 2);
    UniqueFd b = reuseport_socket(type, port_of(a.get()));
    UniqueFd c = reuseport_socket(type, port_of(a.get()));
    CHECK(raw_spread({a.get(), b.get(), c.get()}, type) == "0/0/20");
    a.reset();  // [a, b, c] -> [c, b]
    attach_constant(b.get(), 0);
    CHECK(raw_spread({b.get(), c.get()}, type) == "0/20");
    attach_constant(b.get(), 1);
    CHECK(raw_spread({b.get(), c.get()}, type) == "20/0");
  }
}

TEST_CASE(
    "kernel: a socket with a program of its own cannot join a group; one without takes the "
    "group's") {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    CAPTURE(type);
    UniqueFd a = reuseport_socket(type, 0);
    uint16_t port = port_of(a.get());
    UniqueFd b = reuseport_socket(type, port);
    attach_constant(a.get(), 1);
    // c attaches "→ 0" before it joins (udp: before bind, tcp: before listen).
    UniqueFd c(socket(AF_INET, type | SOCK_CLOEXEC, 0));
    int on = 1;
    REQUIRE(setsockopt(c.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0);
    attach_constant(c.get(), 0);
    sockaddr_in at = ipv4("127.0.0.1", port);
    errno = 0;
    bool joined = bind(c.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0 &&
                  (type == SOCK_DGRAM || listen(c.get(), 128) == 0);
    CHECK_FALSE(joined);
    CHECK(errno == EADDRINUSE);
    UniqueFd d = reuseport_socket(type, port);
    CHECK(raw_spread({a.get(), b.get(), d.get()}, type) == "0/20/0");
  }
}

TEST_CASE(
    "kernel: shutdown(SHUT_RD) takes a tcp listener out of its group though another fd holds it") {
  UniqueFd a = reuseport_socket(SOCK_STREAM, 0);
  UniqueFd b = reuseport_socket(SOCK_STREAM, port_of(a.get()));
  attach_constant(a.get(), 0);
  CHECK(raw_spread({a.get(), b.get()}, SOCK_STREAM) == "20/0");
  UniqueFd held(fcntl(a.get(), F_DUPFD_CLOEXEC, 0));
  REQUIRE(shutdown(a.get(), SHUT_RD) == 0);  // [a, b] -> [b]
  CHECK(raw_spread({b.get()}, SOCK_STREAM) == "20");
  CHECK(accept4(held.get(), nullptr, nullptr, SOCK_NONBLOCK) < 0);
  CHECK(errno == EINVAL);
}

TEST_CASE("kernel: a udp socket stays in its group after shutdown, until its last fd closes") {
  UniqueFd a = reuseport_socket(SOCK_DGRAM, 0);
  UniqueFd b = reuseport_socket(SOCK_DGRAM, port_of(a.get()));
  attach_constant(a.get(), 0);
  UniqueFd held(fcntl(a.get(), F_DUPFD_CLOEXEC, 0));
  a.reset();
  CHECK(raw_spread({held.get(), b.get()}, SOCK_DGRAM) == "20/0");
  held.reset();  // [a, b] -> [b]
  CHECK(raw_spread({b.get()}, SOCK_DGRAM) == "20");

  UniqueFd c = reuseport_socket(SOCK_DGRAM, port_of(b.get()));  // [b, c]
  // Unconnected: ENOTCONN, though it marks the socket shut down; either
  // way it stays in the group.
  CHECK(shutdown(b.get(), SHUT_RD) < 0);
  UniqueFd client = connect_from(nullptr, port_of(b.get()), SOCK_DGRAM);
  for (int i = 0; i < 20; ++i) REQUIRE(send(client.get(), "x", 1, 0) == 1);
  // Still chosen (slot 0): every datagram is on b, none on c.
  char byte;
  for (int i = 0; i < 20; ++i) CHECK(recv(b.get(), &byte, 1, MSG_DONTWAIT) == 1);
  CHECK(recv(c.get(), &byte, 1, MSG_DONTWAIT) < 0);
}

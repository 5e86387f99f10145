// Tests of the LD_PRELOAD shim without baton: the test binds a listening
// socket, starts a program that binds that address itself (legacy,
// epoll_app, threaded_app, python3) with the socket at fd 3, LISTEN_FDS /
// LISTEN_PID and the shim preloaded, and checks exactly what the shim tells
// NOTIFY_SOCKET, that the program serves through the inherited socket, and
// the drain.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "harness.h"

using namespace shimtest;

namespace {

const std::vector<long> kSleeping = {SYS_nanosleep, SYS_clock_nanosleep};
const std::vector<long> kEpollWait = {SYS_epoll_wait, SYS_epoll_pwait};
const std::vector<long> kWaitingForChild = {SYS_wait4, SYS_waitid};

bool have(const char* path) {
  return access(path, X_OK) == 0;
}

/// The child's loaded message, then READY=1.
void expect_ready(const Child& child, NotifyListener& notify) {
  CHECK(notify.next() == loaded_message(child.pid()));
  CHECK(notify.next() == ready_message());
}

/// The kernel has one listening socket on the port (the test's) and the
/// child's own fd 3 is a copy of it.
void expect_no_second_socket(const Child& child, const Listener& listener) {
  auto found = tcp_listeners(listener.port);
  REQUIRE(found.size() == 1);
  CHECK(found[0].inode == listener.inode);
  CHECK(fd_link(child.pid(), 3) == listener.socket_link());
}

struct DrainCase {
  std::vector<std::string> argv;  // the port is appended
  std::string body;               // the expected body, with PID for the child's pid
  std::vector<long> serving_calls;
  int in_flight = 1;
};

struct Drained {
  int status;
  std::string output;  // what the child wrote
};

/// Drains `c` with requests in flight: each completes, STOPPING=1 says how
/// many were open, a connection made after it stays queued for the next
/// holder of the socket, and the child exits.
Drained drain(const DrainCase& c) {
  Listener listener;
  NotifyListener notify;
  std::vector<std::string> argv = c.argv;
  argv.push_back(std::to_string(listener.port));
  Child child(argv, listener, notify);
  expect_ready(child, notify);
  std::vector<int> in_flight;
  for (int i = 0; i < c.in_flight; ++i)
    in_flight.push_back(send_request(listener, "/slow?ms=1000"));
  REQUIRE(serving(child, listener, c.serving_calls, c.in_flight));
  REQUIRE(kill(child.pid(), SIGTERM) == 0);
  CHECK(notify.next() == stopping_message(child.pid(), c.in_flight));
  // Threads that were waiting in accept have been moved off the socket.
  REQUIRE(no_thread_in_tcp_accept(child));
  int late = send_request(listener, "/late");
  std::vector<Response> responses;
  for (int fd : in_flight) responses.push_back(read_response(fd));
  auto status = child.wait();
  REQUIRE(status);
  std::string output = child.output_text();
  INFO("child output: ", output);
  std::string body = c.body;
  body.replace(body.find("PID"), 3, std::to_string(child.pid()));
  for (const Response& response : responses) {
    CHECK(response.text.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(response.body == body);
  }
  // The late connection was left in the queue for the next holder.
  REQUIRE(wait_fd(listener.fd, POLLIN, Clock::now() + 1000ms) > 0);
  int queued = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(queued >= 0);
  char buf[64] = {};
  CHECK(recv(queued, buf, sizeof buf - 1, 0) > 0);
  CHECK(std::string(buf).starts_with("GET /late "));
  close(queued);
  close(late);
  CHECK_FALSE(listener.nonblocking());
  CHECK_FALSE(notify.next(100ms));
  return {*status, output};
}

bool send_text(int fd, const std::string& text) {
  return send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

/// Reads from `fd` until `end` has arrived (or EOF), at most until `deadline`.
std::string read_through(int fd, const std::string& end, Clock::time_point deadline) {
  std::string got;
  char buf[4096];
  while (got.find(end) == std::string::npos && wait_fd(fd, POLLIN, deadline) > 0) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

/// True if the peer closes `fd` before `deadline` without sending anything.
bool closed_by_peer(int fd, Clock::time_point deadline) {
  char c;
  return wait_fd(fd, POLLIN, deadline) > 0 && recv(fd, &c, 1, 0) == 0;
}

/// The sockets `pid` has open ("socket:[INODE]").
std::set<std::string> socket_links(pid_t pid) {
  std::set<std::string> links;
  for (int fd : support::open_fds(pid)) {
    std::string link = support::fd_link(pid, fd);
    if (link.starts_with("socket:")) links.insert(link);
  }
  return links;
}

void expect_killed_by_sigterm(int status) {
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
}

}  // namespace

TEST_CASE("legacy gets the inherited socket for its own bind: loaded, READY=1, served") {
  Listener listener;
  NotifyListener notify;
  Child child({LEGACY_BIN, "--port", std::to_string(listener.port)}, listener, notify);
  expect_ready(child, notify);
  Response response = http_get(listener.address());
  CHECK(response.text.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(response.body == "legacy pid " + std::to_string(child.pid()) + " version 1\n");
  expect_no_second_socket(child, listener);
  CHECK_FALSE(notify.next(100ms));
}

TEST_CASE("epoll_app asks for SOCK_NONBLOCK: served, and the shared socket stays blocking") {
  Listener listener;
  NotifyListener notify;
  Child child({EPOLL_APP_BIN, "--port", std::to_string(listener.port)}, listener, notify);
  expect_ready(child, notify);
  std::string expected = "epoll pid " + std::to_string(child.pid()) + " version 1\n";
  for (int round = 0; round < 10; ++round) {
    std::vector<int> fds;
    for (int i = 0; i < 8; ++i) fds.push_back(send_request(listener, "/"));
    for (int fd : fds) CHECK(read_response(fd).body == expected);
  }
  CHECK_FALSE(listener.nonblocking());
  expect_no_second_socket(child, listener);
}

TEST_CASE("a bind to the inherited port that matches no inherited socket fails: EADDRINUSE") {
  Listener listener;
  NotifyListener notify;
  std::string port = std::to_string(listener.port);
  Child child({LEGACY_BIN, "--host", "127.0.0.2", "--port", port}, listener, notify);
  CHECK(notify.next() == loaded_message(child.pid()));
  CHECK(notify.next() == "BATON_SHIM=refused-bind\nSTATUS=baton-shim: refused bind to 127.0.0.2:" +
                             port + ": no inherited socket matches");
  auto status = child.wait();
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 1);
  CHECK(child.output_text().find("legacy: fatal: unable to bind 127.0.0.2 port " + port +
                                 ": Address already in use\n") != std::string::npos);
  CHECK_FALSE(notify.next(100ms));
  CHECK(tcp_listeners(listener.port).size() == 1);
}

TEST_CASE("drain of legacy: the request in flight completes, then SIGTERM takes effect") {
  expect_killed_by_sigterm(
      drain({{LEGACY_BIN, "--port"}, "legacy pid PID version 1\n", kSleeping}).status);
}

TEST_CASE("drain of epoll_app: its SIGTERM handler runs with the request in flight; exit 0") {
  Drained d = drain({{EPOLL_APP_BIN, "--port"}, "epoll pid PID version 1\n", kEpollWait});
  CHECK(WIFEXITED(d.status));
  CHECK(WEXITSTATUS(d.status) == 0);
  // The handler is the app's graceful path: it got the signal as soon as the
  // app could no longer accept, not after the connection closed.
  CHECK(d.output.find("stopping on SIGTERM, 1 connections open\n") != std::string::npos);
}

TEST_CASE("drain of epoll_app with a one-shot handler: the request completes before SIGTERM") {
  // SA_RESETHAND and raise again: the handler would end the app mid-request.
  Drained d =
      drain({{EPOLL_APP_BIN, "--oneshot", "--port"}, "epoll pid PID version 1\n", kEpollWait});
  expect_killed_by_sigterm(d.status);
  CHECK(d.output.find("stopping") == std::string::npos);
}

TEST_CASE("drain of keepalive_app with idle keep-alive connections: it closes them; exit 0") {
  Listener listener;
  NotifyListener notify;
  Child child({KEEPALIVE_APP_BIN, "--port", std::to_string(listener.port)}, listener, notify);
  expect_ready(child, notify);
  std::string expected = "keepalive pid " + std::to_string(child.pid()) + " version 1\n";
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    int fd = support::connect_stream(listener.address());
    REQUIRE(fd >= 0);
    REQUIRE(send_text(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::string response = read_through(fd, expected, Clock::now() + 5s);
    CHECK(response.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
    CHECK(response.ends_with("\r\n\r\n" + expected));
    idle.push_back(fd);
  }
  REQUIRE(serving(child, listener, {SYS_poll, SYS_ppoll}, 1));  // one thread
  REQUIRE(kill(child.pid(), SIGTERM) == 0);
  CHECK(notify.next() == stopping_message(child.pid(), 3));
  // The app closes each one after its grace (200 ms) without a request.
  for (int fd : idle) {
    CHECK(closed_by_peer(fd, Clock::now() + 5s));
    close(fd);
  }
  auto status = child.wait(5s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  std::string output = child.output_text();
  CHECK(output.find("stopping on SIGTERM, 3 connections open\n") != std::string::npos);
  CHECK_FALSE(notify.next(100ms));
}

TEST_CASE("raw syscall(SYS_accept4) and syscall(SYS_close) are counted as accept4 and close") {
  if (!have("/usr/bin/python3")) return;
  // Python's default SIGTERM action: the drain waits for the connections,
  // as the shim counts them through syscall().
  std::string script = R"(
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
accept4, close = int(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
def take():
    fd = libc.syscall(accept4, s.fileno(), None, None, 0)
    assert fd >= 0, ctypes.get_errno()
    os.read(fd, 4096)
    return fd
first = take()
os.write(first, b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n')
libc.syscall(close, first)
second = take()
while os.read(second, 4096):
    pass
libc.syscall(close, second)
while True:
    os.read(0, 1)
)";
  Listener listener;
  NotifyListener notify;
  Child child({"/usr/bin/python3", "-c", script, std::to_string(listener.port),
               std::to_string(SYS_accept4), std::to_string(SYS_close)},
              listener, notify);
  expect_ready(child, notify);
  CHECK(http_get(listener.address()).body == "ok\n");
  int second = send_request(listener, "/");
  REQUIRE(serving(child, listener, {SYS_read}, 1));
  REQUIRE(kill(child.pid(), SIGTERM) == 0);
  // The first connection was uncounted by its raw close, the second counted
  // by its raw accept4.
  CHECK(notify.next() == stopping_message(child.pid(), 1));
  // Still serving it: back in its read after the signal.
  CHECK(support::eventually([&] { return threads_in(child.pid(), {SYS_read}) == 1; }, 5s, 1ms));
  close(second);
  auto status = child.wait(5s);
  REQUIRE(status);
  INFO(child.output_text());
  expect_killed_by_sigterm(*status);
}

TEST_CASE("drain of 8 threads blocked in accept with every signal blocked: 4 requests finish") {
  expect_killed_by_sigterm(
      drain({{THREADED_APP_BIN, "--port"}, "threaded pid PID version 1\n", kSleeping, 4}).status);
}

TEST_CASE("drain of 8 threads polling a non-blocking socket: 4 requests finish") {
  expect_killed_by_sigterm(drain({{THREADED_APP_BIN, "--nonblocking", "--port"},
                                  "threaded pid PID version 1\n",
                                  kSleeping,
                                  4})
                               .status);
}

TEST_CASE("an app that runs a subprocess per request (vfork) keeps its connection counted") {
  if (!have("/usr/bin/python3")) return;
  // Python's subprocess uses vfork; the child's closefrom() must not touch
  // the parent's view of its fds.
  std::string script = R"(
import os, socket, subprocess, sys
s = socket.socket()
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(4096)
    subprocess.run(['/bin/sleep', '1'])
    body = b'python pid %d version 1\n' % os.getpid()
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
    c.close()
)";
  expect_killed_by_sigterm(
      drain({{"/usr/bin/python3", "-c", script}, "python pid PID version 1\n", kWaitingForChild})
          .status);
}

TEST_CASE("python3 -m http.server started through /usr/bin/env: handed on at exec, drained") {
  if (!have("/usr/bin/python3") || !have("/usr/bin/env")) return;
  Listener listener;
  NotifyListener notify;
  Child child({"/usr/bin/env", "PATH=/usr/bin:/bin", "python3", "-m", "http.server", "--bind",
               "127.0.0.1", std::to_string(listener.port)},
              listener, notify);
  // env and then python3 (the same pid: exec keeps it) each load the shim.
  CHECK(notify.next() == loaded_message(child.pid()));
  expect_ready(child, notify);
  const std::set<std::string> sockets = socket_links(child.pid());
  CHECK(http_get(listener.address()).text.starts_with("HTTP/1.0 200 OK\r\n"));
  // The client sees EOF at the server's shutdown(SHUT_WR), before its
  // close(): the shim counts the connection until then.
  CHECK(support::eventually([&] { return socket_links(child.pid()) == sockets; }));
  expect_no_second_socket(child, listener);
  REQUIRE(kill(child.pid(), SIGTERM) == 0);
  CHECK(notify.next().value_or("(nothing)") == stopping_message(child.pid(), 0));
  auto status = child.wait();
  REQUIRE(status);
  expect_killed_by_sigterm(*status);
}

TEST_CASE("after a claim the app sees its own flags, and exec'd programs inherit nothing") {
  if (!have("/usr/bin/python3")) return;
  Listener listener;
  NotifyListener notify;
  std::string inode = std::to_string(listener.inode);
  std::string script = R"(
import fcntl, os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
flags = lambda: bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
print('fd', s.fileno(), 'inode', os.fstat(s.fileno()).st_ino)
print('nonblocking', flags())
s.setblocking(True)
print('nonblocking', flags())
print('env', os.environ.get('LISTEN_FDS'), os.environ.get('LISTEN_PID'), flush=True)
os.execv('/bin/sh', ['sh', '-c', 'echo exec LISTEN_FDS=${LISTEN_FDS:-unset}; '
                     'for f in /proc/$$/fd/*; do readlink $f; done'])
)";
  Child child({"/usr/bin/python3", "-c", script, std::to_string(listener.port)}, listener, notify);
  CHECK(notify.next() == loaded_message(child.pid()));
  auto status = child.wait();
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  std::string output = child.output_text();
  INFO(output);
  CHECK(output.starts_with("fd 3 inode " + inode +
                           "\nnonblocking True\nnonblocking False\n"
                           "env None None\nexec LISTEN_FDS=unset\n"));
  CHECK(output.find("socket:[" + inode + "]") == std::string::npos);
  CHECK_FALSE(listener.nonblocking());
}

TEST_CASE("an AF_INET bind takes a dual-stack [::] socket and sees IPv4 addresses") {
  if (!have("/usr/bin/python3") || !ipv6_available()) return;
  Listener listener(AF_INET6);
  NotifyListener notify;
  std::string script = R"(
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen()
print('bound', s.getsockname(), flush=True)
c, peer = s.accept()
c.recv(4096)
c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
print('peer', peer[0], 'local', c.getsockname()[0], flush=True)
)";
  std::string port = std::to_string(listener.port);
  Child child({"/usr/bin/python3", "-c", script, port}, listener, notify);
  expect_ready(child, notify);
  CHECK(http_get(listener.address()).body == "ok\n");
  auto status = child.wait();
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(child.output_text() == "bound ('0.0.0.0', " + port + ")\npeer 127.0.0.1 local 127.0.0.1\n");
}

TEST_CASE("a unix socket path: matched after normalisation, and the app's unlink spares it") {
  if (!have("/usr/bin/python3")) return;
  TempDir temp;
  const std::string& dir = temp.path();
  REQUIRE(mkdir((dir + "/sub").c_str(), 0700) == 0);
  {
    Listener listener(AF_UNIX, dir + "/app.sock");
    NotifyListener notify;
    std::string script = R"(
import os, socket, sys
path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen()
c, _ = s.accept()
c.recv(4096)
c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
c.close()
os.unlink(path)
)";
    Child child({"/usr/bin/python3", "-c", script, dir + "//./sub/../app.sock"}, listener, notify);
    expect_ready(child, notify);
    CHECK(http_get(listener.address()).body == "ok\n");
    auto status = child.wait();
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    struct stat st;
    CHECK(stat(listener.path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
  }
}

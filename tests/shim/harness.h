// Harness for the shim tests: a listening socket the test owns (handed to
// the child as fd 3), the NOTIFY_SOCKET the shim reports to, a child started
// with the shim preloaded, loopback HTTP clients and /proc inspection. Every
// wait is bounded.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shimtest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

/// Waits for `events` on `fd` until `deadline`; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline);

/// The test's own listening socket, as baton would bind it (blocking):
/// AF_INET 127.0.0.1:0, AF_INET6 [::]:0 dual-stack, or AF_UNIX at `path`.
struct Listener {
  int fd = -1;
  int family = 0;
  int port = 0;
  std::string path;
  ino_t inode = 0;

  explicit Listener(int family = AF_INET, std::string unix_path = "");
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::string socket_link() const;
  bool nonblocking() const;
};

/// Whether this host can bind an IPv6 socket at all.
bool ipv6_available();

/// The datagram socket the shim reports to (an abstract name).
struct NotifySocket {
  int fd = -1;
  std::string name;

  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  /// The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(Millis timeout = 15000ms);
};

/// A program started with LD_PRELOAD=the shim, `listener` at fd 3,
/// LISTEN_FDS=1, LISTEN_PID=its pid, NOTIFY_SOCKET and
/// BATON_SHIM_DRAIN_SIGNAL=15. Its stdout and stderr go to a pipe. It is
/// SIGKILLed by pid if still running when the test ends.
struct Child {
  pid_t pid = -1;
  int output = -1;
  std::optional<int> status;

  Child(const std::vector<std::string>& argv, const Listener& listener, const NotifySocket& notify);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Waits (on a pidfd) until the child exits; its wait status.
  std::optional<int> wait(Millis timeout = 15000ms);
  /// Everything the child wrote (call once it has exited).
  std::string output_text();
  /// The /proc/PID/fd/N link.
  std::string fd_link(int fd) const;
};

std::string loaded_message(pid_t pid);
std::string ready_message();
std::string stopping_message(pid_t pid, int connections);

/// Connects to the listener (127.0.0.1:port for IP ones, so a dual-stack
/// listener is reached over IPv4) and sends a GET for `path`; the socket.
int send_request(const Listener& listener, const std::string& path);
/// Reads the response on `fd` to its end and closes it.
std::string read_response(int fd, Millis timeout = 15000ms);
std::string http_get(const Listener& listener, const std::string& path = "/");
std::string body_of(const std::string& response);

/// Listening TCP sockets on 127.0.0.1:port (/proc/net/tcp): inode and
/// accept queue length of each.
std::vector<std::pair<ino_t, int>> listeners_on(int port);

/// Threads of `pid` sleeping in one of the system calls `calls`.
int threads_in(pid_t pid, const std::vector<long>& calls);

/// Waits until the child has accepted `count` connections on the port and
/// `count` of its threads sleep in one of `calls`: it took them and got on
/// with serving them (the shim counts a connection on its way out of accept,
/// so the kernel's accept alone is not enough).
bool serving(const Child& child, const Listener& listener, const std::vector<long>& calls,
             int count);

/// Waits until every thread of the child sleeps, none in a TCP accept (its
/// wchan is not inet_csk_accept).
bool no_thread_in_tcp_accept(const Child& child);

}  // namespace shimtest

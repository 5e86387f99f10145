// Harness for the shim tests: a listening socket the test owns (handed to
// the child as fd 3), a child started with the shim preloaded, what the shim
// says it did, and /proc inspection; the NOTIFY_SOCKET the shim reports to,
// loopback HTTP and bounded waits come from tests/support.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "support/loopback.h"
#include "support/notify_listener.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace shimtest {

using namespace std::chrono_literals;
using support::Clock;
using support::fd_link;
using support::http_get;
using support::Millis;
using support::NotifyListener;
using support::read_response;
using support::Response;
using support::tcp_listeners;
using support::TempDir;
using support::wait_fd;

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

  /// Where a client connects: 127.0.0.1:port for IP listeners (so a
  /// dual-stack one is reached over IPv4), else the path.
  std::string address() const;
  std::string socket_link() const;
  bool nonblocking() const;
};

/// Whether this host can bind an IPv6 socket at all.
bool ipv6_available();

/// A program started with LD_PRELOAD=the shim, `listener` at fd 3,
/// LISTEN_FDS=1, LISTEN_PID=its pid, NOTIFY_SOCKET and
/// BATON_SHIM_DRAIN_SIGNAL=15. Its stdout and stderr go to a pipe. It is
/// SIGKILLed by pid if still running when the test ends.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const Listener& listener,
        const NotifyListener& notify);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return process_.pid(); }
  /// Waits until the child exits; its wait status.
  std::optional<int> wait(Millis timeout = 15s) { return process_.wait(timeout); }
  /// Everything the child wrote (call once it has exited).
  std::string output_text();

 private:
  /// Starts the program with its output to a pipe, whose reading end goes to `output`.
  static support::Child start(const std::vector<std::string>& argv, const Listener& listener,
                              const NotifyListener& notify, int& output);
  int output_ = -1;
  support::Child process_;
};

std::string loaded_message(pid_t pid);
std::string ready_message();
std::string stopping_message(pid_t pid, int connections);

/// Connects to the listener and sends a GET for `path`; the socket.
int send_request(const Listener& listener, const std::string& path);

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

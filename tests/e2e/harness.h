// The end-to-end test harness: runs the real `baton` binary in a temporary
// directory, listens to the sd_notify messages it sends (its NOTIFY_SOCKET
// is ours), and talks to the app over loopback. Every wait is bounded and
// every process started is killed by pid when the test ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace e2e {

using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

/// A directory under /tmp, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes `name` in the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed after the timeout
  std::string out, err;
};

/// Runs a command to completion (killed after `timeout`), capturing output.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 30s);

/// A unix datagram socket baton sends its own sd_notify messages to.
class NotifyListener {
 public:
  NotifyListener();
  ~NotifyListener();
  /// The NOTIFY_SOCKET value ("@name").
  const std::string& socket_env() const { return env_; }
  /// The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(Millis timeout);
  /// Reads datagrams until one satisfies `match`; false after `timeout`.
  bool wait_for(const std::function<bool(const std::string&)>& match, Millis timeout);
  /// Every datagram received so far, in order.
  const std::vector<std::string>& history() const { return history_; }
  /// The fd that arrived with the datagram `text` (FDSTORE=1), or -1. The
  /// listener keeps owning it.
  int fd_of(const std::string& text) const;
  /// Closes every fd received so far, as a manager that drops its fd store.
  void drop_fds();

 private:
  int fd_ = -1;
  std::string env_;
  std::vector<std::string> history_;
  /// Fds received, with the index of their datagram in history_.
  std::vector<std::pair<size_t, int>> fds_;
};

/// A running `baton run`, logging to DIR/baton.log.
class Baton {
 public:
  /// Starts `baton run ARGS...` in `dir`; `control` is the control socket path
  /// the test's config uses (passed to status/stop).
  /// `launcher`, if given, is run instead with `args` as its whole command
  /// line (e.g. systemd-socket-activate ... baton run ...).
  Baton(const TempDir& dir, std::vector<std::string> args, std::string control,
        const std::string& launcher = "");

  /// Starts `baton run ARGS...` as systemd would after a restart: `fd` as
  /// fd 3 with LISTEN_FDS=1, LISTEN_FDNAMES=`name`, LISTEN_PID=its pid.
  static std::unique_ptr<Baton> with_socket(const TempDir& dir, std::vector<std::string> args,
                                            std::string control, int fd, const std::string& name);
  ~Baton();

  pid_t pid() const { return pid_; }
  NotifyListener& notify() { return notify_; }
  const std::string& control() const { return control_; }

  /// Waits for baton's READY=1 (its first generation is ready).
  bool wait_ready(Millis timeout = 10s);
  /// Waits until a STATUS= message contains `text`.
  bool wait_status(const std::string& text, Millis timeout = 10s);
  /// `baton status --json`.
  nlohmann::json status();
  /// The pid of the instance in state `state` (e.g. "ready"), or -1.
  pid_t instance_pid(const std::string& state = "ready");
  /// Waits for baton to exit; its exit code, or nullopt after `timeout`.
  std::optional<int> wait_exit(Millis timeout = 10s);
  std::string log() const;

 private:
  void remember_app_pids();
  Baton(const TempDir& dir, std::vector<std::string> argv, std::string control,
        std::vector<std::string> extra_env, int fd3);

  std::string log_path_;
  std::string control_;
  NotifyListener notify_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::set<pid_t> app_pids_;
};

/// The result of one request to the app.
struct Response {
  bool ok = false;
  std::string error;  // why !ok: "connect: Connection refused", "timeout", ...
  int status = 0;
  std::string body;
};

/// GET `path` over TCP ("127.0.0.1:8080", "[::1]:8080") or a unix socket path.
Response http_get(const std::string& address, const std::string& path = "/", Millis timeout = 5s);
/// Connects a stream socket to a TCP address or unix path; -1 on failure.
int connect_stream(const std::string& address, Millis timeout = 5s);
/// Sends a GET on an already connected socket, reads the response and
/// closes the socket.
Response http_get_on(int fd, const std::string& path = "/");
/// Polls `check` until it holds or `timeout` passes, for conditions that no
/// event announces (another process's state).
bool eventually(const std::function<bool()>& check, Millis timeout = 10s);
/// Sends one datagram to a UDP address and returns the reply as the body.
Response udp_request(const std::string& address, const std::string& payload, Millis timeout = 5s);
/// A loopback TCP port that was free a moment ago, for programs that must
/// be told their port before they start.
int free_port();
/// How many connections wait in the accept queue of the IPv4 listening
/// socket on `port` (from /proc/net/tcp), or -1 if there is none.
int accept_queue_length(int port);
/// True while a process with this pid exists.
bool process_exists(pid_t pid);
/// True if a file (of any kind) exists at `path`.
bool path_exists(const std::string& path);

std::string baton_bin();
std::string hello_bin();
std::string probe_bin();

}  // namespace e2e

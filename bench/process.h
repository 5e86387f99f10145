// Process and file helpers for the bench programs (reload_bench, soak): an
// owning fd, a temporary directory, child processes that are always reaped
// (killed by pid if still running when their owner goes away) and bounded
// command runs with captured output. Children are forked from a
// multi-threaded process (the load client's threads), so everything a child
// needs is prepared before fork() and the child itself only makes
// async-signal-safe calls.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace bench {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

/// A step of the benchmark failed; the message names what.
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// True once the bench got SIGINT or SIGTERM (see Child).
bool interrupted();
/// Throws BenchError("interrupted by a signal") if interrupted().
void throw_if_interrupted();
/// Sleeps until `t`; throws as soon as the bench is interrupted.
void sleep_until(Clock::time_point t);

using baton::UniqueFd;

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes `text` to `name` in the directory; returns its path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

/// The last `lines` lines of a text file ("" if it cannot be read).
std::string file_tail(const std::string& path, size_t lines = 20);

/// This process's environment without the variables that would confuse a
/// supervisor or a socket-activated app (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*).
std::vector<std::string> clean_environment();

/// How to start a child.
struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is an absolute path (no PATH search)
  std::vector<std::string> env;   // the complete environment
  int stdout_fd = -1;             // -1: /dev/null
  int stderr_fd = -1;             // -1: /dev/null
  /// If >= 0: becomes the child's fd 3 and LISTEN_PID is set to the child's pid
  /// (systemd socket activation; `env` should carry LISTEN_FDS=1).
  int listen_fd = -1;
  /// setsid() in the child, as baton does for its apps. It matters for
  /// comparisons: with CONFIG_SCHED_AUTOGROUP a new session is a new CPU
  /// scheduling group, which gets a fair share against the load client's.
  bool new_session = false;
};

/// A started child process. The destructor SIGKILLs and reaps it if it has not
/// been reaped yet. While it runs, the first SIGINT or SIGTERM the bench gets
/// is forwarded to it as SIGTERM (and interrupted() turns true); a second
/// one kills the bench.
class Child {
 public:
  /// Forks and execs; throws BenchError if fork fails (exec failure: exit 127).
  static Child spawn(const SpawnOptions& options);

  Child(Child&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  bool reaped() const { return pid_ < 0; }
  /// Reaps the child if it has exited; returns its wait status then.
  std::optional<int> poll_exit();
  /// Waits until `deadline` for the child to exit; nullopt if still running.
  std::optional<int> wait_until(Clock::time_point deadline);
  /// SIGTERM, then waits up to `grace`; SIGKILL after that. Returns the wait
  /// status, or nullopt if it had to be killed.
  std::optional<int> terminate(Millis grace);

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  /// After reaping: stop forwarding signals to the pid.
  void forget();
  pid_t pid_;
};

/// "exited with status N" / "was killed by signal N".
std::string describe_wait_status(int status);

/// A finished command.
struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally (killed, or timed out)
  bool timed_out = false;
  std::string out, err;
  Clock::time_point started, finished;  // just before fork / just after reaping
};

/// Runs `argv` with `env`, capturing stdout and stderr; SIGKILLed after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          Millis timeout);

}  // namespace bench

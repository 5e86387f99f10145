// Child processes for the tests and benchmarks: started with an exact argv
// and environment, waited for with a bound, and killed by pid and reaped by
// their owner at the latest; and what /proc says about a process. Children
// may be forked from a multi-threaded process (the load client's threads),
// so everything a child needs is prepared before fork() and the child itself
// makes only async-signal-safe calls.
#pragma once

#include <sys/types.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/wait.h"

namespace support {

/// This process's environment without the variables a supervisor sets for
/// its children (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*), nor those that start
/// with one of `also_drop` ("LD_PRELOAD=").
std::vector<std::string> clean_environment(const std::vector<std::string>& also_drop = {});

/// How to start a child; stdin is /dev/null.
struct SpawnOptions {
  std::vector<std::string> argv{};  // argv[0] is an absolute path (no PATH search)
  std::vector<std::string> env = clean_environment();  // the complete environment
  int stdout_fd = -1;                                  // -1: /dev/null
  int stderr_fd = -1;                                  // -1: /dev/null
  /// If >= 0: becomes the child's fd 3, and LISTEN_PID=<the child's pid> is
  /// added to `env` (socket activation; `env` should carry LISTEN_FDS=1).
  int listen_fd = -1;
  std::string working_directory{};  // "": this process's
  bool new_process_group = false;   // setpgid(0, 0) in the child
  /// setsid() in the child: a process group and, with CONFIG_SCHED_AUTOGROUP,
  /// a CPU scheduling group of its own.
  bool new_session = false;
  bool close_other_fds = false;  // close every fd above 2 (above 3 with listen_fd)
};

/// A started child process; SIGKILLed by pid and reaped at destruction if it
/// has not been reaped yet.
class Child {
 public:
  /// Forks and execs (an exec failure is exit status 127); throws
  /// std::runtime_error if it cannot fork.
  static Child spawn(const SpawnOptions& options);

  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  bool reaped() const { return status_.has_value(); }
  /// Waits up to `timeout` (0: only looks) for the child to exit and reaps
  /// it: its wait status (again on later calls), or nullopt if it still runs.
  std::optional<int> wait(Millis timeout);
  /// SIGTERM, then up to `grace` for it to exit, then SIGKILL. The wait
  /// status, or nullopt if it had to be killed.
  std::optional<int> terminate(Millis grace);
  /// SIGKILL, if it has not been reaped, and reap it.
  void kill();

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::optional<int> status_;
};

/// The exit status of a wait status, or 128 + the signal that killed it.
int exit_code(int wait_status);
/// "exited with status N" / "was killed by signal N".
std::string describe_wait_status(int wait_status);

/// A finished command.
struct CommandResult {
  int exit_code = -1;  // as exit_code(); -1: killed after the timeout
  bool timed_out = false;
  std::string out, err;
  Clock::time_point started, finished;  // just before fork, just after reaping
};

/// Runs `argv` with `env`, capturing stdout and stderr; SIGKILLed after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 30s,
                          const std::vector<std::string>& env = clean_environment());

/// True while a process with this pid exists and is not a zombie.
bool process_exists(pid_t pid);
/// The target of /proc/PID/fd/FD ("socket:[123]", "/dev/null"), or "" if there is none.
std::string fd_link(pid_t pid, int fd);
/// The fds open in `pid` (none if /proc/PID/fd cannot be read).
std::set<int> open_fds(pid_t pid);

}  // namespace support

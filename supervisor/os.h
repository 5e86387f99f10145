// The seam between the lifecycle and the operating system: starting a
// process, signalling and probing its group, the clock and timers, and the
// sweep for processes that escaped an instance's group. The daemon uses the
// libuv implementation (uv_os.h); the lifecycle's unit tests use a fake that
// orders events as each test needs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "result.h"

namespace baton {

using Clock = std::chrono::steady_clock;

/// What to run and what it inherits.
struct SpawnSpec {
  std::vector<std::string> argv;
  /// Complete environment, "KEY=VALUE" each (LISTEN_PID is added by the trampoline).
  std::vector<std::string> env;
  std::string working_directory;
  /// Fds the child gets as 3, 4, ... in order.
  std::vector<int> fds;
};

/// One started process: the app's main pid, leader of its own process group,
/// with its stdout/stderr piped to baton's log.
class Process {
 public:
  struct Events {
    /// The main process exited: exit status, or the terminating signal.
    std::function<void(int64_t exit_status, int term_signal)> on_exit;
    /// Every handle is closed after retire(): the owner may destroy the object.
    std::function<void()> on_released;
  };

  virtual ~Process() = default;
  virtual pid_t pid() const = 0;
  /// Signals the whole process group (or the pid, before the group exists).
  virtual void signal_group(int sig) = 0;
  /// True while any process of the group is alive.
  virtual bool group_alive() const = 0;
  /// The main process has exited and its group is gone: stop following it
  /// (its last output lines are still logged); on_released follows.
  virtual void retire() = 0;
  /// The last lines the process wrote to stderr, oldest first.
  virtual const std::deque<std::string>& last_stderr() const = 0;
};

/// A one-shot timer; destroying it cancels it.
class Timer {
 public:
  virtual ~Timer() = default;
  /// (Re)arms the timer to fire once, `after` from now.
  virtual void arm(std::chrono::milliseconds after) = 0;
  virtual void cancel() = 0;
};

/// What the escaped-holder sweep looks for (see escaped_holders.h).
struct EscapeScope {
  /// baton's listening sockets: fd and name.
  std::vector<std::pair<int, std::string>> sockets;
  /// Process groups of the instances still tracked.
  std::vector<pid_t> groups;
  /// Main pids of the instances still running.
  std::vector<pid_t> running;
};

class Os {
 public:
  virtual ~Os() = default;
  virtual Clock::time_point now() const = 0;
  /// Starts a process; `generation` only names it in logs.
  virtual Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, int generation,
                                                 Process::Events events) = 0;
  /// The process group of `pid`; -1 if it is gone.
  virtual pid_t process_group_of(pid_t pid) const = 0;
  /// Its command name, for messages; empty if it is gone.
  virtual std::string command_name(pid_t pid) const = 0;
  virtual std::unique_ptr<Timer> timer(std::function<void()> fired) = 0;
  /// Starts following escaped holders: `scope` is asked afresh at each scan,
  /// `on_empty` is called each time the last known one is gone.
  virtual void watch_escaped(std::function<EscapeScope()> scope,
                             std::function<void()> on_empty) = 0;
  /// Looks for processes that escaped `ended`'s group and hold a socket of
  /// the scope; each is killed at `deadline`.
  virtual void sweep_escaped(const std::string& ended, Clock::time_point deadline) = 0;
  /// True when no escaped holder is known to be alive.
  virtual bool escaped_empty() const = 0;
  /// Stops the sweep's timer; nothing is killed after this.
  virtual void close() = 0;
};

}  // namespace baton

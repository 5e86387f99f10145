// The seam between the lifecycle and the operating system: starting a
// process, signalling and probing its group, the clock and timers, and the
// sweep for processes that escaped an instance's group. The daemon uses the
// libuv implementation (uv_os.h); the lifecycle's unit tests use a fake that
// orders events as each test needs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "result.h"
#include "socket_spec.h"

namespace baton {

using Clock = std::chrono::steady_clock;
class ListenSocket;
using SharedSocket = std::shared_ptr<ListenSocket>;

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

/// Something running on baton's behalf (a probe attempt, a command):
/// destroying it cancels it, and its callback is then never called.
class Pending {
 public:
  virtual ~Pending() = default;
};

/// One readiness probe attempt against one listener of the candidate.
struct ProbeSpec {
  enum class Kind { kHttp, kTcp };
  Kind kind = Kind::kTcp;
  /// The listener to reach alone; Os::probe sets target and source from
  /// its probe_target().
  SharedSocket listener;
  /// Where to connect: a tcp address, or a unix path (never abstract).
  SocketAddress target;
  /// tcp: the local address to bind before connecting ("127.0.0.2": the
  /// steering program sends connections from it to the candidate); empty:
  /// none.
  std::string source;
  /// kHttp: what to ask and what passes.
  HttpCheck http;
  /// The attempt's limit, from connect to the end of the answer.
  Millis timeout{1'000};
};

struct ProbeResult {
  bool passed = false;
  /// One line: "http /health: 503 in 3ms", "http /health: 200 in 2ms",
  /// "tcp 127.0.0.1:8080: connection refused", "http /health: timed out
  /// after 1s".
  std::string summary;
};

/// A command baton runs itself: an exec probe, a smoke check, a hook. It
/// runs in a process group of its own, stdin from /dev/null.
struct CommandSpec {
  std::vector<std::string> argv;
  /// Complete environment, "KEY=VALUE" each.
  std::vector<std::string> env;
  std::string working_directory;
  /// Its process group is SIGKILLed when this runs out.
  Millis timeout{60'000};
};

struct CommandResult {
  /// It exited with status 0 within its timeout.
  bool passed = false;
  /// "exited with status 0", "exited with status 3", "was killed by
  /// SIGSEGV", "timed out after 5s", "could not be started: ENOENT ...".
  std::string outcome;
  /// The last lines it wrote (stdout and stderr together), oldest first; at
  /// most kCommandOutputLines, each cut at 1 KiB.
  std::vector<std::string> output;
  Millis took{0};
};
inline constexpr size_t kCommandOutputLines = 20;

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
  /// The parent of `pid`; -1 if it is gone.
  virtual pid_t parent_of(pid_t pid) const = 0;
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

  /// Starts one probe attempt; `done` is called once, on the loop.
  virtual std::unique_ptr<Pending> probe(const ProbeSpec& spec,
                                         std::function<void(ProbeResult)> done) = 0;
  /// Runs a command; `line` is called for each line it writes (as it writes
  /// it), `done` once when it has exited or was killed for its timeout.
  /// Destroying the Pending SIGKILLs its group.
  virtual std::unique_ptr<Pending> run(const CommandSpec& spec,
                                       std::function<void(const std::string&)> line,
                                       std::function<void(CommandResult)> done) = 0;

  /// Per-generation listeners (socket_set.h): every later public connection
  /// on these sockets' addresses goes to them. Shared sockets are skipped.
  virtual Status switch_to(const std::vector<SharedSocket>& sockets) = 0;
  /// Rolling and canary deploys: `share` in kShareScale (steering.h) of
  /// later public connections go to these candidate sockets, the rest to
  /// the serving ones; 0 takes them all back.
  virtual Status share(const std::vector<SharedSocket>& sockets, uint32_t share) = 0;
  /// Connections waiting in the accept queues of `sockets`' per-generation
  /// listeners, not yet accepted by any process; nullopt when none of them
  /// is a per-generation listener (shared sockets have nothing to wait for).
  virtual std::optional<int> queued(const std::vector<SharedSocket>& sockets) = 0;
};

}  // namespace baton

// Instance: one running process of the app (the main pid of a generation),
// started through baton's exec trampoline with the listening sockets as fds
// 3.., its own process group, and its stdout/stderr piped back to baton.
#pragma once

#include <uv.h>

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

enum class InstanceState { kStarting, kReady, kDraining, kExited };
std::string_view to_string(InstanceState state);

/// A spawned app process and its libuv handles. The object is owned by the
/// supervisor and may be destroyed only once `released()` is true, that is
/// after every handle's close callback has run.
class Instance {
 public:
  struct Callbacks {
    /// The main process exited: exit status, or the terminating signal.
    std::function<void(Instance&, int64_t exit_status, int term_signal)> on_exit;
    /// A timer set with `arm_timer` fired.
    std::function<void(Instance&)> on_timer;
    /// All handles are closed; the supervisor may now destroy the object.
    std::function<void(Instance&)> on_released;
  };

  /// Starts the process. `generation` and `label` only name it in logs.
  static Result<std::unique_ptr<Instance>> spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                 int generation, Callbacks callbacks);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  pid_t pid() const { return pid_; }
  int generation() const { return generation_; }
  /// Signals the whole process group (pgid == pid: the trampoline made the app
  /// a group leader).
  void signal_group(int sig) const;
  /// True while any process of the instance's group is alive.
  bool group_alive() const;

  /// (Re)arms the instance's single timer; it fires `on_timer` once.
  void arm_timer(std::chrono::milliseconds after);
  void cancel_timer();

  /// Called once the main process has exited and its group is gone: closes
  /// the process handle and lets the pipes drain to EOF (so the app's last
  /// lines are logged), closing them anyway after a short grace period in
  /// case a process that left the group still holds them.
  void retire();
  /// Closes every handle now. `on_released` follows once libuv is done.
  void close();
  bool released() const { return open_handles_ == 0; }

  /// The last lines the app wrote to stderr, oldest first.
  const std::deque<std::string>& last_stderr() const { return stderr_tail_; }

  InstanceState state = InstanceState::kStarting;
  /// Set when the main process has exited.
  bool exited = false;
  Clock::time_point started_at = Clock::now();
  Clock::time_point ready_at{};
  Clock::time_point drain_started_at{};
  /// Last STATUS= the app sent.
  std::string status_text;
  /// The pid whose notify messages count: the started process, or the one
  /// it named with MAINPID=.
  pid_t notify_pid = -1;
  /// Why baton is killing a starting instance ("sent no READY=1 within
  /// ready_timeout (60s)"); empty while nothing went wrong.
  std::string failure;
  /// Set when the drain timeout ran out and the group was SIGKILLed.
  bool drain_killed = false;
  /// How the main process ended ("exited with status 0"), once it has.
  std::string exit_description;
  /// Shim mode: set once the shim reported that it loaded in the app.
  bool shim_loaded = false;

 private:
  struct Output;
  Instance() = default;
  static void on_process_exit(uv_process_t* handle, int64_t status, int signal) noexcept;
  static void on_timer_fired(uv_timer_t* handle) noexcept;
  static void on_handle_closed(uv_handle_t* handle) noexcept;
  void close_handle(uv_handle_t* handle);
  void emit_line(bool is_stderr, std::string_view line);
  void on_pipe_eof(uv_handle_t* pipe);

  uv_process_t process_{};
  uv_timer_t timer_{};
  std::unique_ptr<Output> out_, err_;
  /// Handles initialised and not yet closed (process, timer, two pipes).
  int open_handles_ = 0;
  pid_t pid_ = -1;
  int generation_ = 0;
  /// Set by retire(): the timer now bounds the wait for the pipes' EOF.
  bool retired_ = false;
  Callbacks callbacks_;
  std::deque<std::string> stderr_tail_;
};

}  // namespace baton

// Instance: one run of the app in a generation, as the lifecycle sees it:
// its state, its process (through the Os seam), its one timer, whose meaning
// is given by the state, and what it told baton.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "os.h"

namespace baton {

struct Generation;

/// Every state an instance is in, from spawn to release. What the armed
/// timer means is part of the state (see the table in supervisor.cc).
enum class InstanceState {
  /// Spawned, no READY=1 yet. Timer: ready_timeout (or EXTEND_TIMEOUT_USEC=).
  kStarting,
  /// Failed to start (or, as a reload's candidate, while ready): SIGKILL was
  /// sent, the exit is awaited. No timer.
  kFailing,
  /// Sent READY=1. Timer: the watchdog, when watchdog_sec is set.
  kReady,
  /// Told to drain (drain_signal sent). Timer: drain_timeout.
  kDraining,
  /// drain_timeout ran out: SIGKILL was sent, the exit is awaited. No timer.
  kDrainKilled,
  /// Drained: the main pid has exited but other processes of its group live
  /// on. Timer: a short poll of the group, until drain_timeout.
  kLingering,
  /// The main pid and its group are gone; its output pipes are closing. No
  /// timer. Released (forgotten) once the process's handles are closed.
  kExited,
};
inline constexpr int kInstanceStates = 7;
/// The state's name in logs and `status` ("starting", "drain-killed").
std::string_view to_string(InstanceState state);
/// The state as `status` has always shown it: starting, ready, draining or exited.
std::string_view public_state(InstanceState state);

struct Instance {
  std::shared_ptr<Generation> gen;
  /// Its place in the generation, from 1 (BATON_INSTANCE).
  int slot = 1;
  std::unique_ptr<Process> process;
  std::unique_ptr<Timer> timer;
  InstanceState state = InstanceState::kStarting;

  Clock::time_point started_at{};
  Clock::time_point ready_at{};
  Clock::time_point drain_started_at{};
  /// Last STATUS= the app sent.
  std::string status_text;
  /// The pid whose notify messages count: the started process, or the one
  /// it named with MAINPID=.
  pid_t notify_pid = -1;
  /// Why baton is killing it (kFailing: "sent no READY=1 within
  /// ready_timeout (60s)"); empty otherwise.
  std::string failure;
  /// How the main process ended ("exited with status 0"), once it has.
  std::string exit_description;
  /// Its exit status when it exited (not killed by a signal); -1 otherwise.
  int exit_status = -1;
  /// A READY=1 that came from another process of its group (a worker, a
  /// wrapper's systemd-notify), which does not count: "pid 12 (sh)".
  std::string foreign_ready;
  /// Shim mode: set once the shim reported that it loaded in the app.
  bool shim_loaded = false;

  /// Readiness (starting): the checks still to pass. `notify`: READY=1 is
  /// required and has not come; `probes`: the configured probes not yet
  /// passed, in the order they are tried ("http", "tcp", "exec").
  bool awaiting_notify = false;
  std::vector<std::string> probes;
  /// The attempt in flight, and the timer that starts the next one.
  std::unique_ptr<Pending> probe_attempt;
  std::unique_ptr<Timer> probe_timer;
  /// Attempts of the probe being tried, and when the last one started.
  int probe_attempts = 0;
  Clock::time_point probe_started_at{};
  /// The last result of each probe tried, for messages and `status`
  /// ("http /health: 503 in 3ms (attempt 4)").
  std::vector<std::string> probe_results;

  /// True once every readiness check has passed.
  bool checks_passed() const { return !awaiting_notify && probes.empty(); }

  pid_t pid() const { return process->pid(); }
  int generation() const;
  /// True once the main process has exited.
  bool exited() const {
    return state == InstanceState::kLingering || state == InstanceState::kExited;
  }
};

}  // namespace baton

// What the lifecycle reports, as typed records, and their renderings: the
// JSON of `baton status` and of reload replies, and the one-line STATUS=
// text for the service manager. The lifecycle fills the records; nothing
// here decides anything.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "instance.h"
#include "metrics.h"
#include "os.h"

namespace baton {

/// How many reloads `status` keeps: the last one and those before it.
inline constexpr size_t kReloadHistory = 5;

/// The timings and outcome of one reload, kept for `status`.
struct ReloadRecord {
  int generation = 0;
  int replaced_generation = 0;
  /// The first new and the first replaced instance's pids, and all of them.
  pid_t pid = 0;
  pid_t replaced_pid = 0;
  std::vector<pid_t> pids, replaced_pids;
  /// "starting", "ok", "rolled back", "refused" or "aborted".
  std::string result = "starting";
  std::string error;
  Clock::time_point requested_at{}, exec_at{}, ready_at{}, drain_sent_at{}, drained_at{};
  /// How the replaced instance ended: "exited with status 0", "killed after drain_timeout".
  std::string drain_result;
};

/// How a reload ended, for the clients that asked for it.
struct ReloadOutcome {
  bool ok = false;
  /// Why it failed ("generation 2 pid 12 exited with status 1 before READY=1;
  /// generation 1 (pid 10) keeps serving").
  std::string error;
  /// The failed candidate's last stderr lines.
  std::vector<std::string> stderr_tail;
  /// The reload's record; none when it never started (baton is stopping).
  std::optional<ReloadRecord> record;
  /// A success that is not a finished reload: a canary began, or was
  /// rolled back ("canary: generation 2 gets 10% of new connections; ...").
  std::string message;

  static ReloadOutcome success(const ReloadRecord& record) { return {true, {}, {}, record, {}}; }
  static ReloadOutcome failure(std::string error, std::optional<ReloadRecord> record = {},
                               std::vector<std::string> stderr_tail = {}) {
    return {false, std::move(error), std::move(stderr_tail), std::move(record), {}};
  }
  static ReloadOutcome canary(const ReloadRecord& record, std::string message) {
    return {true, {}, {}, record, std::move(message)};
  }
};

struct InstanceView {
  int generation = 0;
  /// Its place in its generation, from 1 (BATON_INSTANCE).
  int instance = 1;
  pid_t pid = 0;
  InstanceState state = InstanceState::kStarting;
  Clock::time_point started_at{}, ready_at{}, drain_started_at{};
  std::string status_text;
  /// Starting: the readiness checks not passed yet ("READY=1", "http
  /// /health"), and the last result of each probe tried.
  std::vector<std::string> waiting_for, probe_results;
};

struct SocketView {
  std::string name, url, kind, address;
  /// "per-generation", or "shared: <why steering cannot be used>".
  std::string listeners;
  /// Set when an app changed the socket's backlog (ListenSocket::backlog_note).
  std::string backlog_note;
};

/// A generation's release: what it runs, resolved when it was created.
struct ReleaseView {
  int generation = 0;
  std::string executable, working_directory;
};

/// Everything `baton status` shows, at one moment.
struct StatusSnapshot {
  std::string name;
  /// "running", "stopping" or "stopped".
  std::string state;
  Clock::time_point now{}, started_at{};
  std::string control;
  int generation = 0;
  /// Over every instance slot of the serving generation.
  int restarts = 0;
  int reloads = 0;
  /// The serving generation's `instances`, and how many of them are ready.
  int instances_wanted = 1;
  int ready_instances = 0;
  /// The generation a reload is starting, if any, and its step
  /// ("pre_reload", "starting", "smoke", "min_ready", "switching", "failed").
  std::optional<int> reloading;
  std::string reload_step;
  /// The share of new connections the reload's candidate has (kShareScale
  /// parts): a rolling step's, or a canary's.
  uint32_t candidate_share = 0;
  /// A canary in progress: since when, and when its hold promotes it (zero:
  /// it waits for `baton promote`); the last result of its http probe.
  struct CanaryView {
    Clock::time_point since{}, promote_at{};
    std::string last_probe;
  };
  std::optional<CanaryView> canary;
  std::vector<SocketView> sockets;
  /// Every instance that has not exited, oldest first.
  std::vector<InstanceView> instances;
  /// The serving generation's instance, and the reload candidate, if any.
  std::optional<InstanceView> serving, candidate;
  std::optional<ReloadRecord> last_reload;
  /// The reloads before it, newest first (kReloadHistory - 1 at most).
  std::vector<ReloadRecord> earlier_reloads;
  /// The reload candidate's checks, in the order they run: the pre_reload
  /// hook, readiness, each smoke check, the min_ready hold. `state` is
  /// "pending", "running", "passed", "failed" or "skipped"; `detail` what
  /// it waits for or how it ended ("smoke home: exited with status 0 in 35ms").
  struct CheckView {
    std::string name, state, detail;
  };
  std::vector<CheckView> candidate_checks;
  /// The serving generation's slots: the last exit (of any slot) and the
  /// restart due first, with that slot's failures in a row.
  int consecutive_failures = 0;
  std::string last_exit;
  Clock::time_point last_exit_at{}, next_start_at{};
  /// Every slot of the serving generation with a restart pending.
  struct Restarting {
    int instance = 0;
    Clock::time_point next_start_at{};
    std::string last_exit;
    int consecutive_failures = 0;
  };
  std::vector<Restarting> restarting;
  /// The serving generation's release, and the past ones `baton rollback`
  /// can start again, the one it would first.
  ReleaseView release;
  std::vector<ReleaseView> rollback_to;
  /// The warm standby, if any: its generation, its ready instances, and
  /// when it drains.
  struct StandbyView {
    int generation = 0;
    int ready_instances = 0;
    Clock::time_point until{};
  };
  std::optional<StandbyView> standby;
  /// What baton has done since it started.
  Counters counters;
};

/// Milliseconds from `from` to `to`; -1 when either is unset.
int64_t between_ms(Clock::time_point from, Clock::time_point to);

nlohmann::json reload_record_json(const ReloadRecord& record, Clock::time_point now);
/// The reply to a reload request that has ended.
nlohmann::json reload_outcome_json(const ReloadOutcome& outcome, Clock::time_point now);
/// `status`'s JSON; `pid` is baton's own.
nlohmann::json status_json(const StatusSnapshot& s, pid_t pid);
/// STATUS= for the service manager: "generation 2 pid 12 ready; last reload ok".
std::string status_text(const StatusSnapshot& s);

}  // namespace baton

// Supervisor: the state machine that runs generations of the app on baton's
// listening sockets: start, readiness, restart with backoff, reload as a
// transaction (start new, wait for READY=1, drain old; or roll back), and
// stop. Every transition is made in supervisor.cc.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config.h"
#include "control_server.h"
#include "escaped_holders.h"
#include "instance.h"
#include "log_throttle.h"
#include "manager_notifier.h"
#include "notify_message.h"
#include "socket_set.h"

namespace baton {

/// One version of the app: a config snapshot, the sockets it was given and
/// its current instance. A crash restarts the generation with a new
/// instance; a reload creates a new generation.
struct Generation {
  int number = 0;
  std::shared_ptr<const Config> config;
  /// The sockets its instances receive as fds 3..; held until the last of
  /// its instances has exited.
  std::vector<SharedSocket> sockets;
  /// The starting or ready instance, or null (restart pending, or drained).
  Instance* instance = nullptr;
  /// Instances started after the first one (crash restarts).
  int restarts = 0;
  /// Failures in a row; sets the restart delay. Reset by a run that became
  /// ready and lasted restart_delay_max.
  int consecutive_failures = 0;
  /// How its last instance ended ("pid 12 exited with status 1 before
  /// READY=1"), and when; empty until one has.
  std::string last_exit;
  Clock::time_point last_exit_at{};
  /// When the pending restart is due; zero when none is pending.
  Clock::time_point next_start_at{};
};

/// What a reload starts from: a validated config and its sockets.
struct GenerationPlan {
  std::shared_ptr<const Config> config;
  std::vector<SharedSocket> sockets;
};

/// One client waiting on a reload (null reply: SIGHUP, nobody to tell).
struct ReloadRequest {
  std::shared_ptr<ControlReply> reply;
  /// Also wait until the replaced generation has exited.
  bool wait_drained = false;
};

/// The timings and outcome of one reload, kept for `status`.
struct ReloadRecord {
  int generation = 0;
  int replaced_generation = 0;
  pid_t pid = 0;
  pid_t replaced_pid = 0;
  /// "starting", "ok", "rolled back", "refused" or "aborted".
  std::string result = "starting";
  std::string error;
  Clock::time_point requested_at{}, exec_at{}, ready_at{}, drain_sent_at{}, drained_at{};
  /// How the replaced instance ended: "exited with status 0", "killed after drain_timeout".
  std::string drain_result;
};

class Supervisor {
 public:
  /// Loads the config for a reload: re-read, validated, sockets prepared.
  using Loader = std::function<Result<GenerationPlan>()>;

  Supervisor(uv_loop_t* loop, GenerationPlan first, std::string notify_socket_env,
             ManagerNotifier& manager, Loader loader);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Starts generation 1.
  void start();
  /// Starts a reload, or queues it behind the one in progress.
  void reload(ReloadRequest request);
  /// Drains every instance, then calls `on_stopped` (once all have exited
  /// and been released). A reload in progress is aborted.
  void stop(std::function<void()> on_stopped);
  /// A datagram arrived on the notify socket from `pid`.
  void handle_notify(pid_t pid, const NotifyMessage& msg);
  /// Called once, when the first generation is ready.
  std::function<void()> on_serving;
  /// A process group that holds baton's sockets by right although no
  /// instance leads it (an app left by a baton that died, until drained).
  void keep_group(pid_t group) { kept_groups_.push_back(group); }
  void release_group(pid_t group) { std::erase(kept_groups_, group); }
  /// True for a process baton spawned whose handles are still open (libuv
  /// waits for it; nobody else may).
  bool spawned(pid_t pid) const;
  /// Everything `baton status` shows.
  nlohmann::json status() const;

 private:
  enum class State { kRunning, kStopping, kStopped };
  struct Tracked;
  struct Reload;

  // Starting instances.
  /// Starts an instance of `gen`; the error says why it could not be started.
  Status spawn_instance(const std::shared_ptr<Generation>& gen);
  std::vector<std::string> child_environment(const Generation& gen) const;
  Tracked* find_live(pid_t pid);
  Tracked* find(const Instance& inst);
  /// The config of the generation `inst` belongs to.
  const Config& config_of(const Instance& inst);

  // Events, each handled per instance state.
  void on_exit(Instance& inst, int64_t status, int signal);
  void on_timer(Instance& inst);
  void on_ready(Tracked& t);
  void on_start_failed(Tracked& t, const std::string& reason);
  void on_released(Instance& inst);
  std::string ready_timeout_reason(const Tracked& t) const;

  // Actions.
  void drain(Instance& inst);
  void finish(Instance& inst);
  void check_group_after_exit(Instance& inst);
  /// Restarts the current generation after its backoff delay. `failed` is
  /// the instance that just ended, or null when none could be started.
  void schedule_restart(const Instance* failed);
  void check_stopped();
  /// What EscapedHolders looks for: every socket a generation holds, and
  /// the process groups of the instances still tracked.
  EscapedHolders::Scope escape_scope() const;
  void report_status();

  // The reload transaction.
  /// Starts a reload from the re-read config, or from `same` (the current
  /// generation's config and sockets, to replace a hung instance).
  void start_reload(std::vector<ReloadRequest> requests,
                    std::optional<GenerationPlan> same = std::nullopt);
  void arm_watchdog(Tracked& t);
  void on_watchdog_expired(Tracked& t);
  /// The new generation is ready: commit now, or first keep the old one
  /// serving for min_ready.
  void hold_or_commit(Tracked& t);
  /// Arms the min_ready timer to fire after `wait`.
  void arm_min_ready(Millis wait);
  void commit_reload(Tracked& t);
  /// Ends a failed reload; `failed` is its released instance, if it had one.
  void roll_back(const Instance* failed);
  void end_reload();
  /// Who serves after a failed reload, for its messages.
  std::string serving_after_rollback() const;
  void note_drained(const Instance& inst, const std::string& how);
  void broadcast(const std::string& message);

  uv_loop_t* loop_;
  std::string notify_socket_env_;
  ManagerNotifier& manager_;
  Loader loader_;
  /// Environment baton was started with, as "KEY=VALUE", less its own
  /// manager's variables.
  std::vector<std::string> base_environment_;

  State state_ = State::kRunning;
  /// The serving generation.
  std::shared_ptr<Generation> current_;
  /// The reload in progress, if any (its generation is starting).
  std::unique_ptr<Reload> reload_;
  /// Requests that arrived during a reload: run as one reload after it.
  std::vector<ReloadRequest> queued_;
  /// Every instance whose handles are not yet all closed, oldest first.
  std::vector<Tracked> instances_;
  /// Reload requests waiting for a replaced instance to finish draining.
  std::vector<std::pair<const Instance*, ReloadRequest>> drain_waiters_;
  std::optional<ReloadRecord> last_reload_;
  int reloads_ = 0;
  int next_generation_ = 1;
  uv_timer_t restart_timer_{};
  /// Ends a reload's min_ready hold (commits it).
  uv_timer_t min_ready_timer_{};
  std::vector<pid_t> kept_groups_;
  /// Processes outside every instance's group that hold baton's sockets.
  EscapedHolders escaped_;
  /// Notify messages from processes that are no instance's.
  LogThrottle foreign_notify_;
  bool told_manager_ready_ = false;
  Clock::time_point started_at_ = Clock::now();
  std::vector<std::function<void()>> on_stopped_;
};

}  // namespace baton

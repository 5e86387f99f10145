// Supervisor: the lifecycle of the app on baton's listening sockets. Every
// instance is in one InstanceState; every event an instance can see is
// dispatched through one table, kInstanceTable in supervisor.cc, and the
// reload transaction through kReloadTable in reload.cc. Everything it does
// to the system goes through the Os seam; everything it tells the world
// goes out as typed calls (LifecycleListener, ReloadClient), which the
// daemon turns into sd_notify messages and control-socket JSON.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app_protocol.h"
#include "config.h"
#include "duration.h"
#include "instance.h"
#include "log_throttle.h"
#include "notify_message.h"
#include "os.h"
#include "report.h"
#include "socket_set.h"

namespace baton {

/// How a probe names itself in messages: "http /health", "tcp", "exec ./check".
std::string probe_label(const std::string& probe, const ReadyChecks& ready);
/// A starting instance's checks not passed yet ("READY=1", "http /health"),
/// and the last result of each probe tried.
std::vector<std::string> waiting_for(const Instance& inst);
std::vector<std::string> last_probe_results(const Instance& inst);
/// How a hook or smoke check is named in messages: its `name`, else its command.
std::string check_name(const CheckCommand& check);
/// The socket http and tcp probes connect to: ready.socket, or the first
/// stream socket.
std::optional<size_t> probed_socket_index(const Config& config);

/// What a generation runs, resolved when it is created: its instances,
/// restarts included, and a rollback to it run these same files even after
/// a deploy tool moved a `current` symlink.
struct Release {
  /// The command's program, found in the app's PATH, every symlink
  /// resolved; empty when it was not found (the start then fails as it
  /// would without baton).
  std::string executable;
  /// The working directory (baton's own when none is set), resolved too.
  std::string working_directory;
};

/// One of a generation's `instances` places: the instance in it (if any),
/// and its own restart backoff. A crash restarts that place only.
struct InstanceSlot {
  /// Its number, from 1 (BATON_INSTANCE).
  int number = 0;
  /// Instances started in it after the first one (crash restarts).
  int restarts = 0;
  /// Failures in a row; sets the restart delay. Reset by a run that became
  /// ready and lasted restart_delay_max.
  int consecutive_failures = 0;
  /// How its last instance ended ("pid 12 exited with status 1 before
  /// READY=1"), and when; empty until one has.
  std::string last_exit;
  Clock::time_point last_exit_at{};
  /// When its pending restart is due; zero when none is pending.
  Clock::time_point next_start_at{};
  std::unique_ptr<Timer> restart_timer;
};

/// One version of the app: a config snapshot, its listeners and its
/// instances. A crash restarts the instance's slot; a reload creates a new
/// generation.
struct Generation {
  int number = 0;
  std::shared_ptr<const Config> config;
  std::shared_ptr<const AppProtocol> protocol;
  Release release;
  /// Its listeners: the sockets its instances receive as fds 3..; held
  /// until the last of its instances has been released.
  std::vector<SharedSocket> sockets;
  /// Its instances that are starting or ready, in the order they started.
  std::vector<Instance*> instances;
  /// Its `instances` places, numbered from 1.
  std::vector<InstanceSlot> slots;

  /// The first instance that serves (or is starting to), if any.
  Instance* instance() const { return instances.empty() ? nullptr : instances.front(); }
  /// How many of its instances are ready.
  int ready_count() const;
  InstanceSlot& slot(int number) { return slots.at(static_cast<size_t>(number - 1)); }
  /// The instance of slot `number` that is starting or ready; null while a
  /// restart is pending, and once drained.
  Instance* in_slot(int number) const;
  /// Restarts over all its slots.
  int restarts() const;
  /// The slot whose instance ended last, and the one whose restart is due
  /// first; null when there is none.
  const InstanceSlot* last_failed() const;
  const InstanceSlot* next_restart() const;
};

/// What a reload starts from: a validated config and its sockets.
struct GenerationPlan {
  std::shared_ptr<const Config> config;
  std::vector<SharedSocket> sockets;
  /// A release rollback: the release to run again; none: resolved anew.
  std::optional<Release> release;
};

/// A generation a release rollback can start again: its number, config
/// snapshot and release.
struct PastRelease {
  int generation = 0;
  std::shared_ptr<const Config> config;
  Release release;
};

/// A client waiting on a reload.
class ReloadClient {
 public:
  virtual ~ReloadClient() = default;
  /// The reload waits behind the one in progress.
  virtual void queued(const std::string& message) = 0;
  virtual void progress(const std::string& message) = 0;
  /// It committed; the client also waits until the replaced instance is gone.
  virtual void draining(const ReloadRecord& record) = 0;
  virtual void finished(const ReloadOutcome& outcome) = 0;
};

/// One reload request (a null client: SIGHUP, nobody to tell); also a
/// promote or rollback request.
struct ReloadRequest {
  std::shared_ptr<ReloadClient> client;
  /// Also wait until the replaced generation has exited.
  bool wait_drained = false;
  /// `reload --canary SHARE`: a canary reload with that share (in
  /// kShareScale parts), whatever the config's [canary] says.
  std::optional<uint32_t> canary;
};

/// What the lifecycle tells whoever runs it.
class LifecycleListener {
 public:
  virtual ~LifecycleListener() = default;
  /// The service serves: when the first instance is ready (`first`), and
  /// again at the end of every reload, whatever its outcome (READY=1).
  virtual void serving(bool first) = 0;
  /// A reload started (RELOADING=1).
  virtual void reloading() = 0;
  /// baton is stopping (STOPPING=1).
  virtual void stopping() = 0;
  /// Something `status` shows changed.
  virtual void status_changed(const StatusSnapshot& status) = 0;
  /// New connections now go to `serving`, a new generation's sockets.
  virtual void switched(const std::vector<SharedSocket>& serving) { (void)serving; }
};

/// The instance-table events. Notify messages that arrive together are
/// dispatched in this order.
enum class InstanceEvent {
  kWatchdog,       ///< WATCHDOG=1
  kStartFailed,    ///< ERRNO=, STOPPING=1, or the shim refused a bind
  kExtendTimeout,  ///< EXTEND_TIMEOUT_USEC=
  kReady,          ///< READY=1
  kExit,           ///< the main pid exited
  kTimer,          ///< the instance's timer fired (its meaning: the state's)
  kDrain,          ///< told to drain: stop, or a reload committed
  kReleased,       ///< its process's handles are all closed
  kProbed,         ///< a readiness probe attempt ended (passed or not)
};
inline constexpr int kInstanceEvents = 9;

/// What came with an event.
struct EventArgs {
  /// kStartFailed: why.
  std::string reason;
  /// kExtendTimeout: how much longer.
  Millis extra{0};
  /// kProbed: whether the attempt passed (`reason`: its summary).
  bool passed = false;

  static EventArgs failed(std::string why) { return {std::move(why), Millis{0}, false}; }
  static EventArgs extend(Millis extra) { return {{}, extra, false}; }
  static EventArgs probed(bool passed, std::string summary) {
    return {std::move(summary), Millis{0}, passed};
  }
};

class Supervisor {
 public:
  /// Loads the config for a reload: re-read, validated, sockets prepared;
  /// or, given a config snapshot (a release rollback), that config's
  /// sockets prepared.
  using Loader = std::function<Result<GenerationPlan>(std::shared_ptr<const Config> snapshot)>;

  /// `base_environment` is what every instance inherits (see
  /// inherited_environment); `notify_socket` its NOTIFY_SOCKET.
  Supervisor(Os& os, LifecycleListener& listener, GenerationPlan first,
             std::vector<std::string> base_environment, std::string notify_socket, Loader loader);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Starts generation 1.
  void start();
  /// Starts a reload, or queues it behind the one in progress. During a
  /// canary it is refused: promote or roll back first.
  void reload(ReloadRequest request);
  /// `baton promote`: the canary in progress takes every new connection (a
  /// commit, as a reload's); the client is answered as a reload's.
  void promote(ReloadRequest request);
  /// `baton rollback`: the canary in progress gives its share back and
  /// drains; answered once it is gone.
  void rollback(ReloadRequest request);
  /// Drains every instance, then calls `on_stopped` (once all have exited
  /// and been released). A reload in progress is aborted.
  void stop(std::function<void()> on_stopped);
  /// A datagram arrived on the notify socket from `pid`.
  void handle_notify(pid_t pid, const NotifyMessage& msg);
  /// A process group that holds baton's sockets by right although no
  /// instance leads it (an app left by a baton that died, until drained).
  void keep_group(pid_t group) { kept_groups_.push_back(group); }
  void release_group(pid_t group) { std::erase(kept_groups_, group); }
  /// True for a process baton spawned whose handles are still open (libuv
  /// waits for it; nobody else may).
  bool spawned(pid_t pid) const;
  /// Everything `baton status` shows.
  StatusSnapshot snapshot() const;
  /// The number of the newest generation started so far (0: none).
  int newest_generation() const { return next_generation_ - 1; }

 private:
  /// Dispatches `event` to `inst` through kInstanceTable.
  void dispatch(Instance& inst, InstanceEvent event, const EventArgs& args = {});
  enum class State {
    kBooting,   ///< running; no instance has served yet (no READY=1 sent)
    kServing,   ///< running; READY=1 was sent
    kStopping,  ///< draining everything
    kStopped,
  };
  using Action = void (Supervisor::*)(Instance&, const EventArgs&);
  static const Action kInstanceTable[kInstanceStates][kInstanceEvents];
  /// A "-" cell: the event changes nothing in that state.
  static const Action kNop;
  /// Where the reload in progress is (see kReloadTable in reload.cc).
  enum class ReloadPhase {
    kPreReload,  ///< the pre_reload hook runs; nothing is started yet
    kStarting,   ///< the candidate is starting (its readiness checks run)
    kSmoking,    ///< it is ready; its smoke checks run, one at a time
    kHolding,    ///< they passed; the old one serves on for min_ready
    kSwitching,  ///< committed and switched; the old one empties its queues
    kFailed,     ///< it failed; rolled back once it is released
    kRestoring,  ///< a rollout failed: the old slots it drained start again
    kUnsharing,  ///< they did: the candidate's share is 0; its queues empty
    kCanary,     ///< the candidate has its canary share until promoted or rolled back
  };
  static constexpr int kReloadPhases = 9;
  enum class ReloadEvent {
    kHookPassed,         ///< pre_reload exited 0
    kHookFailed,         ///< pre_reload failed (`reason`)
    kCandidateReady,     ///< the candidate passed its readiness checks
    kCandidateFailed,    ///< it was told to die, or exited (`reason`)
    kSmokePassed,        ///< the smoke check in progress passed
    kSmokeFailed,        ///< it failed (`reason`)
    kHoldElapsed,        ///< the reload's timer: min_ready is over, or poll the switch
    kCandidateReleased,  ///< it is gone and its handles are closed
    kStop,               ///< baton is stopping
    kRestored,           ///< an old instance started again became ready, or ended
    kPromote,            ///< `baton promote`
    kRollback,           ///< `baton rollback`
  };
  static constexpr int kReloadEvents = 12;
  /// The reload in progress: its clients, its candidate generation, and
  /// where it is.
  struct Reload {
    ReloadPhase phase = ReloadPhase::kStarting;
    std::vector<ReloadRequest> requests;
    ReloadRecord record;
    std::shared_ptr<Generation> gen;
    /// Why it failed (phase kFailed), and the instance whose failure it was
    /// (0: none, such as a failed smoke check) with its last stderr lines,
    /// kept when it is released.
    std::string failure;
    pid_t failed_pid = 0;
    std::vector<std::string> failed_stderr;
    /// The output of the check or hook that failed it, for the reply.
    std::vector<std::string> failure_output;
    /// The hook or smoke check running, and which smoke check it is.
    std::unique_ptr<Pending> command;
    size_t smoke_index = 0;
    /// How each smoke check run so far ended, in order, for `status`
    /// ("exited with status 0 in 35ms").
    struct SmokeResult {
      bool passed = false;
      std::string outcome;
    };
    std::vector<SmokeResult> smoke_results;
    /// When its min_ready hold began.
    Clock::time_point hold_from{};
    /// The generation it replaces, once committed.
    std::shared_ptr<Generation> replaced;
    /// The smoke checks have passed (they run once, before any share).
    bool smoked = false;
    /// A rolling reload: the candidate's instances that have had a share
    /// of public connections, the old slots drained so far, and the share.
    std::vector<pid_t> served;
    std::vector<int> retired_slots;
    uint32_t share = 0;
    /// A canary reload: its share and hold, when the canary began, whether
    /// it was promoted, and who asked for a rollback (answered when the
    /// candidate is gone).
    std::optional<Config::Canary> canary;
    Clock::time_point canary_since{};
    bool promoted = false;
    std::vector<ReloadRequest> rollback_requests;
    /// `baton rollback` to the warm standby: the candidate is the standby,
    /// whose instances are ready already; nothing is started.
    bool to_standby = false;
    /// The canary's http probe, every ready.interval: the timer, the attempt
    /// in flight, failures in a row and the last result.
    std::unique_ptr<Timer> watch_timer;
    std::unique_ptr<Pending> watch_attempt;
    int watch_failures = 0;
    std::string watch_last;
  };
  using ReloadAction = void (Supervisor::*)(const std::string&);
  static const ReloadAction kReloadTable[kReloadPhases][kReloadEvents];
  /// A "-" cell of the reload table.
  static const ReloadAction kReloadNop;

  bool running() const { return state_ == State::kBooting || state_ == State::kServing; }
  bool is_candidate(const Instance& inst) const;
  /// The reload's generation; only while a reload is in progress.
  const std::shared_ptr<Generation>& reload_gen() const;
  /// Whether every instance the reload started is ready (and at least one
  /// was started).
  bool candidates_ready() const;
  /// Whether an instance of `gen` is still tracked (not yet released).
  bool has_instances(const Generation& gen) const;

  // Starting instances.
  /// Resolves what `config`'s command and working directory are now.
  Release resolve_release(const Config& config) const;
  /// A generation for `plan`, numbered next, with its `instances` slots.
  std::shared_ptr<Generation> make_generation(GenerationPlan plan);
  /// Starts an instance of `gen` in slot `slot`; the error says why it
  /// could not be started.
  Status spawn_instance(const std::shared_ptr<Generation>& gen, int slot);
  Instance* find_live(pid_t pid);

  // The instance table's actions (supervisor.cc).
  void ignore(Instance&, const EventArgs&) {}
  void become_ready(Instance& inst, const EventArgs&);
  void fail_start(Instance& inst, const EventArgs& args);
  void extend_start(Instance& inst, const EventArgs& args);
  void ready_timed_out(Instance& inst, const EventArgs&);
  /// A notify message from a pid that is no instance's: logged (throttled);
  /// a READY=1 from a starting instance's group is remembered for its
  /// timeout message.
  void foreign_notify(pid_t pid, const NotifyMessage& msg);
  /// Whether `inst`, which exited, failed to execute its command (exit 127
  /// or 126 before it was ever ready): restarting it would loop forever.
  static bool cannot_execute(const Instance& inst);
  void exit_starting(Instance& inst, const EventArgs&);
  void exit_failing(Instance& inst, const EventArgs&);
  void exit_ready(Instance& inst, const EventArgs&);
  void start_drain(Instance& inst, const EventArgs&);
  void feed_watchdog(Instance& inst, const EventArgs&);
  void watchdog_expired(Instance& inst, const EventArgs&);
  void exit_draining(Instance& inst, const EventArgs&);
  void drain_timed_out(Instance& inst, const EventArgs&);
  void exit_drain_killed(Instance& inst, const EventArgs&);
  void poll_group(Instance& inst, const EventArgs&);
  void forget(Instance& inst, const EventArgs&);
  void probe_done(Instance& inst, const EventArgs& args);
  void notified(Instance& inst, const EventArgs&);

  // Readiness checks (checks.cc).
  /// Sets up the instance's checks and starts the first probe.
  void start_checks(Instance& inst);
  /// Starts an attempt of the first probe not yet passed.
  void attempt_probe(Instance& inst);
  void stop_probes(Instance& inst);
  /// The probed listener of `gen` ("ready.socket"), if it has one.
  const SharedSocket* probed_socket(const Generation& gen) const;
  /// What baton's commands for `gen` start with: the app's environment and
  /// where to reach the candidate (BATON_GENERATION, BATON_CANDIDATE_*).
  CommandSpec command_spec(const Generation& gen, const CheckCommand& command) const;
  /// "did not pass its readiness checks within ready_timeout (5s): last
  /// http /health: 503 in 3ms (attempt 20)".
  std::string checks_timeout_reason(const Instance& inst) const;

  // Helpers of those actions.
  void kill_instance(Instance& inst, const std::string& reason);
  void arm_watchdog(Instance& inst);
  /// A starting or ready instance's main pid exited: it ends for `reason`.
  void end_run(Instance& inst, const std::string& reason);
  /// The main pid and its group are gone.
  void finish(Instance& inst);
  /// A drained instance is gone: `killed` after drain_timeout, or by itself.
  void finish_drained(Instance& inst, bool killed);
  /// Restarts `slot` of the current generation after its backoff delay.
  /// `failed` is the instance that just ended, or null when none could be
  /// started.
  void schedule_restart(InstanceSlot& slot, const Instance* failed);
  /// Schedules a restart for every slot of the current generation that has
  /// no instance and no restart pending.
  void restart_empty_slots();
  void cancel_restarts(Generation& gen);
  /// The restart timer of a slot of the current generation fired.
  void restart_due(Generation& gen, InstanceSlot& slot);
  void check_stopped();
  EscapeScope escape_scope() const;
  void report_status();
  /// The first time an instance serves, or the end of a reload.
  void tell_serving();
  Millis since(Clock::time_point t) const;

  // The reload transaction (reload.cc).
  void start_reload(std::vector<ReloadRequest> requests,
                    std::optional<GenerationPlan> same = std::nullopt);
  /// Makes `gen` the candidate of a new reload for `requests`: its record
  /// names what it replaces; the current generation's restarts stop;
  /// RELOADING=1.
  void begin_reload(std::shared_ptr<Generation> gen, std::vector<ReloadRequest> requests,
                    Clock::time_point requested_at);
  /// Stops what the reload's step runs (its hook or smoke check, its timer,
  /// the canary's probe) and moves it to `next`.
  void leave_step(ReloadPhase next);
  void reload_event(ReloadEvent event, const std::string& reason = {});
  void hold_or_commit(const std::string&);
  void candidate_failed(const std::string& reason);
  /// A candidate instance failed (it exited, or baton is killing it).
  void candidate_ended(const Instance& inst, const std::string& reason);
  void hold_elapsed(const std::string&);
  void roll_back_released(const std::string&);
  void abort_reload(const std::string&);
  void reload_ignore(const std::string&) {}
  void hook_passed(const std::string&);
  void hook_failed(const std::string&);
  void abort_pre_reload(const std::string&);
  void smoke_or_hold(const std::string&);
  void smoke_passed(const std::string&);
  void smoke_failed(const std::string&);
  /// Starts the candidate of a reload whose plan is loaded (and hooked).
  void start_candidate();
  /// Kills every instance of the candidate (the first kill fails the reload).
  void kill_candidates(const std::string& reason);
  /// Starts the candidate's next instances: all of them, or a rolling
  /// reload's next max_surge; false if one could not be spawned (the reload
  /// is failed then).
  bool start_batch();
  /// A rolling reload's step is ready: the candidate gets its share, as many
  /// old instances drain, and the next step starts.
  void advance_rollout();
  /// A rolling reload failed after its candidate served: the old
  /// generation's drained slots start again before the candidate gives up
  /// its share (restore_done), then it drains.
  void restore_rollout();
  void restore_progress(const std::string&);
  void restore_done();
  void settle_unshare(const std::string&);
  /// After a switch (or a share taken back), polls the queues of the
  /// listeners no new connection reaches now: true once they have stayed
  /// empty for kSwitchSettle; false once kSwitchSettleMax is over first
  /// (`queued`: what still waits); nullopt: it polls again later.
  std::optional<bool> queues_settled(const std::vector<SharedSocket>& sockets, int& queued);
  /// The candidate passed its checks: it gets its canary share; the
  /// reload's clients are answered.
  void start_canary();
  void promote_canary(const std::string&);
  void rollback_canary(const std::string&);
  /// The canary's hold is over: promoted if it stayed up.
  void canary_held(const std::string&);
  void watch_canary();
  void stop_watch();
  /// `baton rollback` with no reload in progress: the latest past release
  /// starts again through a normal (checked) reload.
  void roll_back_release(ReloadRequest request);
  /// `baton rollback` within the standby window: new connections switch
  /// back to the standby generation (no process starts) and the current
  /// one drains.
  void roll_back_to_standby(ReloadRequest request);
  /// Why `gen` cannot be kept as a warm standby (a socket that cannot be
  /// steered away from it); empty when it can.
  std::string standby_obstacle(const Generation& gen) const;
  /// Takes the standby out of its place (and cancels its window).
  std::shared_ptr<Generation> take_standby();
  /// The standby drains (its window is over, or a reload starts: `why`).
  void drop_standby(const std::string& why);
  /// Runs smoke check `smoke_index`, or holds/commits when none is left.
  void run_smoke();
  /// Runs the next after_drained hook whose older generations are gone.
  void run_after_drained();
  /// Old instances wait, still serving, until the switch has settled.
  void settle_switch(const std::string&);
  /// Tells the old generation to drain and answers the reload's clients.
  void finish_commit(const std::string&);
  void arm_hold(Millis wait);
  void commit_reload();
  /// Ends a failed reload once its candidate instances are released.
  void roll_back();
  /// Counts a committed reload and its step durations for `baton metrics`.
  void count_committed(const ReloadRecord& record);
  void end_reload();
  /// Who serves after a failed reload, for its messages.
  std::string serving_after_rollback() const;
  /// Makes `record` the last reload; the one before joins the history.
  void keep_reload(const ReloadRecord& record);
  /// The reload candidate's checks and where each stands, for `status`.
  std::vector<StatusSnapshot::CheckView> candidate_checks() const;
  void note_drained(const Instance& inst, const std::string& how);
  void broadcast(const std::string& message);
  /// Answers who waited for generations of which no instance is left.
  void answer_drain_waiters();

  Os& os_;
  LifecycleListener& listener_;
  Loader loader_;
  std::vector<std::string> base_environment_;
  std::string notify_socket_;

  State state_ = State::kBooting;
  /// The serving generation.
  std::shared_ptr<Generation> current_;
  /// The reload in progress, if any.
  std::unique_ptr<Reload> reload_;
  /// Requests that arrived during a reload: run as one reload after it.
  std::vector<ReloadRequest> queued_;
  /// Every instance not yet released, oldest first.
  std::vector<std::unique_ptr<Instance>> instances_;
  /// Reload requests waiting for a replaced generation's instances to finish
  /// draining: the generation's number and the request.
  std::vector<std::pair<int, ReloadRequest>> drain_waiters_;
  std::optional<ReloadRecord> last_reload_;
  /// The reloads before last_reload_, newest first (status's history).
  std::deque<ReloadRecord> earlier_reloads_;
  /// For `baton metrics`.
  Counters counters_;
  /// The releases a rollback can go back to, the latest first (at most
  /// kPastReleases): the generations reloads replaced.
  std::vector<PastRelease> past_releases_;
  int reloads_ = 0;
  int next_generation_ = 1;
  /// Ends a reload's min_ready hold (commits it).
  std::unique_ptr<Timer> hold_timer_;
  /// The warm standby: the generation the last reload replaced, kept up
  /// and steered away from until `standby_until_` (its timer).
  std::shared_ptr<Generation> standby_;
  Clock::time_point standby_until_{};
  std::unique_ptr<Timer> standby_timer_;
  std::vector<pid_t> kept_groups_;
  /// The switch of the reload in progress: when it happened, and when the
  /// old listeners' queues were last seen non-empty.
  Clock::time_point switched_at_{}, last_queued_at_{};
  /// after_drained hooks due, oldest reload first: the generation whose
  /// older generations must be gone, the hook, and who waits for it.
  struct AfterDrained {
    int generation = 0;
    std::shared_ptr<const Config> config;
    std::vector<ReloadRequest> waiters;
  };
  std::vector<AfterDrained> after_drained_;
  std::unique_ptr<Pending> after_drained_running_;
  /// Notify messages from processes that are no instance's.
  LogThrottle foreign_notify_;
  Clock::time_point started_at_;
  std::vector<std::function<void()>> on_stopped_;
};

}  // namespace baton

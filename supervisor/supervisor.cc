// The supervision state machine. Each instance is in one InstanceState and
// belongs to a generation: the serving one (current), the one a reload is
// starting (pending), or an older one. The events below move instances, and
// nothing else does:
//
//   state     | READY=1               | fails to start (exit,    | timer                 | stop
//             |                       | ERRNO=, STOPPING=1)      |                       |
//   ----------+-----------------------+--------------------------+-----------------------+-------
//   starting  | current: -> ready     | current: restart later   | ready_timeout: fail   | drain
//             | pending: commit the   | pending: KILL, roll back |   to start (KILL)     |
//             |   reload, drain old   |   once it is released    |                       |
//   ready     | -                     | exit: restart later      | -                     | drain
//   draining  | -                     | exit: wait for the group | drain_timeout: KILL   | -
//
// A reload is a transaction: the old generation keeps serving until the new
// one is ready, and is untouched when the new one fails. "restart later"
// applies only to the current generation while no reload is starting; the
// delay doubles with each failure in a row (restart_delay..restart_delay_max).
#include "supervisor.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "duration.h"
#include "environment.h"
#include "proc_stat.h"
#include "socket_holders.h"

extern char** environ;

namespace baton {

struct Supervisor::Tracked {
  std::unique_ptr<Instance> inst;
  std::shared_ptr<Generation> gen;
};

/// The reload in progress: its clients, its new generation and, once the
/// new instance has failed, why.
struct Supervisor::Reload {
  std::vector<ReloadRequest> requests;
  ReloadRecord record;
  std::shared_ptr<Generation> gen;
  /// The new generation's instance; null if it could not be spawned.
  Instance* inst = nullptr;
  /// Why the reload failed; the transaction ends when `inst` is released.
  std::string failure;
};

namespace {

/// While a draining instance's main pid has exited but other processes of
/// its group live on, the group is checked this often.
constexpr Millis kGroupPoll{50};

/// The shim's LD_PRELOAD (in front of any the environment had), handed to
/// the trampoline as BATON_LD_PRELOAD so that it applies to the app only (a
/// sanitizer build of baton itself must not load it), and the drain signal
/// the shim intercepts.
void add_shim_environment(const Config& config, Environment& env) {
  std::string preload = config.shim_library;
  if (const std::string* existing = env.get("LD_PRELOAD")) preload += ":" + *existing;
  env.erase("LD_PRELOAD");
  env.set("BATON_LD_PRELOAD", preload);
  env.set("BATON_SHIM_DRAIN_SIGNAL", std::to_string(config.drain_signal));
}

/// The process group of `pid`, from /proc; -1 if it is gone.
pid_t process_group_of(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st ? st->pgrp : -1;
}

/// A process's command name, for messages; "gone" if it exited.
std::string command_of(pid_t pid) {
  std::string name = command_name(pid);
  return name.empty() ? "gone" : name;
}

Millis since(Clock::time_point t) {
  return std::chrono::duration_cast<Millis>(Clock::now() - t);
}

int64_t between_ms(Clock::time_point from, Clock::time_point to) {
  if (from == Clock::time_point{} || to == Clock::time_point{}) return -1;
  return std::chrono::duration_cast<Millis>(to - from).count();
}

std::string describe_exit(int64_t status, int signal) {
  if (signal != 0) return fmt::format("was killed by {}", signal_name(signal));
  if (status == 127) return "exited with status 127 (the command could not be executed)";
  return fmt::format("exited with status {}", status);
}

nlohmann::json record_json(const ReloadRecord& r) {
  auto ms = [](int64_t v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"generation", r.generation},
          {"replaced_generation", r.replaced_generation},
          {"pid", r.pid},
          {"replaced_pid", r.replaced_pid},
          {"result", r.result},
          {"error", r.error},
          {"ago_ms", since(r.requested_at).count()},
          {"request_to_exec_ms", ms(between_ms(r.requested_at, r.exec_at))},
          {"exec_to_ready_ms", ms(between_ms(r.exec_at, r.ready_at))},
          {"ready_to_drain_ms", ms(between_ms(r.ready_at, r.drain_sent_at))},
          {"drain_ms", ms(between_ms(r.drain_sent_at, r.drained_at))},
          {"drain_result", r.drain_result}};
}

}  // namespace

Supervisor::Supervisor(uv_loop_t* loop, GenerationPlan first, std::string notify_socket_env,
                       ManagerNotifier& manager, Loader loader)
    : loop_(loop),
      notify_socket_env_(std::move(notify_socket_env)),
      manager_(manager),
      loader_(std::move(loader)),
      escaped_(loop, [this] { return escape_scope(); }) {
  escaped_.on_empty = [this] { check_stopped(); };
  base_environment_ = inherited_environment(environ);
  current_ = std::make_shared<Generation>();
  current_->number = next_generation_++;
  current_->config = std::move(first.config);
  current_->sockets = std::move(first.sockets);
  for (uv_timer_t* timer : {&restart_timer_, &min_ready_timer_}) {
    uv_timer_init(loop_, timer);
    timer->data = this;
  }
}

Supervisor::~Supervisor() = default;

void Supervisor::start() {
  if (!spawn_instance(current_)) schedule_restart(nullptr);
}

// ---- Starting instances ---------------------------------------------------

std::vector<std::string> Supervisor::child_environment(const Generation& gen) const {
  Environment env(base_environment_);
  for (const auto& [key, value] : gen.config->environment) env.set(key, value);
  std::vector<std::string> names;
  for (const SocketSpec& s : gen.config->sockets) names.push_back(s.name);
  env.set("LISTEN_FDS", std::to_string(gen.sockets.size()));
  env.set("LISTEN_FDNAMES", fmt::format("{}", fmt::join(names, ":")));
  env.set("NOTIFY_SOCKET", notify_socket_env_);
  if (gen.config->shim) add_shim_environment(*gen.config, env);
  if (gen.config->watchdog_sec.count() > 0) {
    env.set("WATCHDOG_USEC", std::to_string(gen.config->watchdog_sec.count() * 1000));
  }
  return env.entries();
}

Status Supervisor::spawn_instance(const std::shared_ptr<Generation>& gen) {
  const Config& config = *gen->config;
  SpawnSpec spec;
  // The trampoline (`baton __exec`) sets LISTEN_PID to its own pid, which
  // exec keeps, then execs the command: libuv offers no hook between fork
  // and exec, and sd_listen_fds() ignores fds whose LISTEN_PID is not its pid.
  spec.argv = {"/proc/self/exe", "__exec"};
  spec.argv.insert(spec.argv.end(), config.command.begin(), config.command.end());
  spec.env = child_environment(*gen);
  spec.working_directory = config.working_directory;
  for (const SharedSocket& s : gen->sockets) spec.fds.push_back(s->fd());

  Instance::Callbacks callbacks{
      [this](Instance& i, int64_t status, int sig) { on_exit(i, status, sig); },
      [this](Instance& i) { on_timer(i); },
      [this](Instance& i) { on_released(i); },
  };
  auto inst = Instance::spawn(loop_, spec, gen->number, std::move(callbacks));
  if (!inst) {
    spdlog::error("generation {}: {}", gen->number, inst.error().message);
    gen->last_exit = inst.error().message;
    gen->last_exit_at = Clock::now();
    return inst.error();
  }
  gen->instance = inst->get();
  gen->instance->arm_timer(config.ready_timeout);
  spdlog::info("generation {}: started pid {} ({})", gen->number, gen->instance->pid(),
               fmt::join(config.command, " "));
  instances_.push_back(Tracked{std::move(*inst), gen});
  report_status();
  return {};
}

Supervisor::Tracked* Supervisor::find_live(pid_t pid) {
  // A started pid is unique among live instances: it wins over any MAINPID=.
  for (Tracked& t : instances_) {
    if (!t.inst->exited && t.inst->pid() == pid) return &t;
  }
  // A pid named with MAINPID= counts only while it is still in the
  // instance's process group: once it has exited, its number can be reused
  // by another generation's process, whose messages must not be credited
  // to this instance.
  pid_t group = process_group_of(pid);
  for (Tracked& t : instances_) {
    if (!t.inst->exited && t.inst->notify_pid == pid && group == t.inst->pid()) return &t;
  }
  // In shim mode any process of the app's group may speak: the shim in a
  // pre-fork worker can be the first to see the app accept.
  for (Tracked& t : instances_) {
    if (!t.inst->exited && t.gen->config->shim && group == t.inst->pid()) return &t;
  }
  return nullptr;
}

const Config& Supervisor::config_of(const Instance& inst) {
  return *find(inst)->gen->config;
}

bool Supervisor::spawned(pid_t pid) const {
  return std::any_of(instances_.begin(), instances_.end(),
                     [&](const Tracked& t) { return t.inst->pid() == pid; });
}

Supervisor::Tracked* Supervisor::find(const Instance& inst) {
  for (Tracked& t : instances_) {
    if (t.inst.get() == &inst) return &t;
  }
  return nullptr;
}

// ---- Events ----------------------------------------------------------------

void Supervisor::handle_notify(pid_t pid, const NotifyMessage& msg) {
  Tracked* t = find_live(pid);
  if (!t) {
    if (auto more = foreign_notify_.allow()) {
      spdlog::info(
          "notify: ignored a message from pid {} ({}): only an instance's main pid, or the pid "
          "it names with MAINPID=, may send READY=1 and the other messages{}",
          pid, command_of(pid), *more);
    }
    return;
  }
  Instance& inst = *t->inst;
  if (msg.main_pid && pid == inst.pid() && *msg.main_pid != inst.notify_pid) {
    spdlog::info("[gen {} pid {}] MAINPID={}", inst.generation(), pid, *msg.main_pid);
    inst.notify_pid = *msg.main_pid;
  }
  if (msg.status) {
    inst.status_text = *msg.status;
    spdlog::info("[gen {} pid {}] STATUS={}", inst.generation(), pid, *msg.status);
  }
  if (msg.baton_shim == "loaded") inst.shim_loaded = true;
  if (inst.state == InstanceState::kReady && msg.watchdog) arm_watchdog(*t);
  if (inst.state != InstanceState::kStarting) return;
  if (msg.baton_shim == "refused-bind") {
    return on_start_failed(*t, fmt::format("bound a socket of its own: {}",
                                           msg.status.value_or("a bind was refused")));
  }
  if (msg.errno_value) {
    return on_start_failed(*t, fmt::format("reported ERRNO={} ({}) before READY=1",
                                           *msg.errno_value, std::strerror(*msg.errno_value)));
  }
  if (msg.stopping) return on_start_failed(*t, "sent STOPPING=1 before READY=1");
  if (msg.extend_timeout_usec && inst.failure.empty()) {
    Millis extra(static_cast<int64_t>(*msg.extend_timeout_usec / 1000));
    spdlog::info("[gen {} pid {}] asks for {} more to start", inst.generation(), pid,
                 format_duration(extra));
    inst.arm_timer(extra);
  }
  if (msg.ready) on_ready(*t);
}

void Supervisor::on_ready(Tracked& t) {
  Instance& inst = *t.inst;
  if (!inst.failure.empty()) return;
  inst.state = InstanceState::kReady;
  inst.ready_at = Clock::now();
  inst.cancel_timer();
  arm_watchdog(t);
  spdlog::info(
      "generation {}: pid {} ready after {}", inst.generation(), inst.pid(),
      format_duration(std::chrono::duration_cast<Millis>(inst.ready_at - inst.started_at)));
  if (reload_ && t.gen == reload_->gen) return hold_or_commit(t);
  if (!told_manager_ready_) {
    told_manager_ready_ = true;
    manager_.notify("READY=1");
    if (on_serving) on_serving();
  }
  report_status();
}

void Supervisor::hold_or_commit(Tracked& t) {
  Millis hold = t.gen->config->min_ready;
  if (hold.count() == 0) return commit_reload(t);
  // The old generation keeps serving beside the new one for min_ready: if
  // the new one exits meanwhile, the reload rolls back and nothing was
  // taken from the old one.
  reload_->record.ready_at = t.inst->ready_at;
  broadcast(
      fmt::format("generation {}: pid {} ready after {}; generation {} keeps serving for "
                  "min_ready ({}) in case it exits",
                  t.inst->generation(), t.inst->pid(),
                  format_duration(Millis(between_ms(t.inst->started_at, t.inst->ready_at))),
                  current_->number, format_duration(hold)));
  arm_min_ready(hold);
  report_status();
}

void Supervisor::arm_min_ready(Millis wait) {
  uv_update_time(loop_);
  uv_timer_start(
      &min_ready_timer_,
      [](uv_timer_t* timer) noexcept {
        auto* self = static_cast<Supervisor*>(timer->data);
        if (!self->reload_ || !self->reload_->inst || self->state_ != State::kRunning) return;
        if (self->reload_->inst->state != InstanceState::kReady) return;
        // libuv's loop clock counts whole milliseconds, so the timer can fire
        // up to 1ms early; the promise is "stayed up for min_ready" as the
        // status report measures it, so wait out any remainder.
        auto up = Clock::now() - self->reload_->record.ready_at;
        auto left = self->reload_->gen->config->min_ready - up;
        if (left > Clock::duration::zero()) {
          return self->arm_min_ready(std::chrono::ceil<Millis>(left));
        }
        self->commit_reload(*self->find(*self->reload_->inst));
      },
      static_cast<uint64_t>(wait.count()), 0);
}

void Supervisor::on_start_failed(Tracked& t, const std::string& reason) {
  Instance& inst = *t.inst;
  if (!inst.failure.empty()) return;
  inst.failure = reason;
  spdlog::error("generation {}: pid {} {}; killing it", inst.generation(), inst.pid(), reason);
  inst.signal_group(SIGKILL);
}

void Supervisor::on_exit(Instance& inst, int64_t status, int signal) {
  Tracked* t = find(inst);
  inst.exit_description = describe_exit(status, signal);
  switch (inst.state) {
    case InstanceState::kStarting:
    case InstanceState::kReady: {
      std::string reason = inst.failure;
      if (reason.empty()) {
        reason = inst.state == InstanceState::kStarting
                     ? fmt::format("{} before READY=1", inst.exit_description)
                     : fmt::format("{} while ready", inst.exit_description);
        if (inst.state == InstanceState::kReady && reload_ && t->gen == reload_->gen) {
          reason +=
              fmt::format(" within min_ready ({})", format_duration(config_of(inst).min_ready));
        }
        spdlog::error("generation {}: pid {} {}", inst.generation(), inst.pid(), reason);
      }
      if (t->gen->instance == &inst) t->gen->instance = nullptr;
      t->gen->last_exit = fmt::format("pid {} {}", inst.pid(), reason);
      t->gen->last_exit_at = Clock::now();
      if (inst.group_alive()) inst.signal_group(SIGKILL);  // orphaned workers
      finish(inst);
      if (reload_ && t->gen == reload_->gen) {
        if (reload_->failure.empty()) reload_->failure = reason;  // rolled back once released
      } else if (t->gen == current_ && state_ == State::kRunning && !reload_) {
        schedule_restart(&inst);
      }
      break;
    }
    case InstanceState::kDraining:
      check_group_after_exit(inst);  // logs how it ended once the group is gone
      break;
    case InstanceState::kExited:
      break;
  }
  report_status();
}

void Supervisor::on_timer(Instance& inst) {
  switch (inst.state) {
    case InstanceState::kStarting: {
      Tracked& t = *find(inst);
      on_start_failed(t, ready_timeout_reason(t));
      break;
    }
    case InstanceState::kDraining:
      if (!inst.exited) {
        spdlog::warn("generation {}: pid {} still running after drain_timeout ({}); killing it",
                     inst.generation(), inst.pid(), format_duration(config_of(inst).drain_timeout));
        inst.drain_killed = true;
        inst.signal_group(SIGKILL);
      } else {
        check_group_after_exit(inst);
      }
      break;
    case InstanceState::kReady:
      on_watchdog_expired(*find(inst));
      break;
    case InstanceState::kExited:
      break;
  }
}

void Supervisor::arm_watchdog(Tracked& t) {
  Millis every = t.gen->config->watchdog_sec;
  if (every.count() > 0) t.inst->arm_timer(every);
}

void Supervisor::on_watchdog_expired(Tracked& t) {
  Instance& inst = *t.inst;
  spdlog::error("generation {}: pid {} sent no WATCHDOG=1 for {}; replacing it", inst.generation(),
                inst.pid(), format_duration(t.gen->config->watchdog_sec));
  if (reload_ && t.gen == reload_->gen) {
    return on_start_failed(t, fmt::format("sent no WATCHDOG=1 for {} within min_ready",
                                          format_duration(t.gen->config->watchdog_sec)));
  }
  if (state_ != State::kRunning || t.gen != current_) return;
  if (reload_) return;  // the reload in progress replaces it
  start_reload({}, GenerationPlan{current_->config, current_->sockets});
}

std::string Supervisor::ready_timeout_reason(const Tracked& t) const {
  const Config& config = *t.gen->config;
  std::string reason = fmt::format("sent no READY=1 within ready_timeout ({})",
                                   format_duration(config.ready_timeout));
  if (!config.shim) return reason;
  if (!t.inst->shim_loaded) {
    return reason +
           ": the shim never loaded in it (a static, setuid or Go binary, or a wrapper "
           "that clears LD_PRELOAD?)";
  }
  return fmt::format(
      "{}: the shim loaded but the app did not bind every configured socket and "
      "start accepting (shim status: \"{}\")",
      reason, t.inst->status_text);
}

void Supervisor::on_released(Instance& inst) {
  if (reload_ && reload_->inst == &inst) roll_back(&inst);
  for (auto it = drain_waiters_.begin(); it != drain_waiters_.end();) {
    if (it->first != &inst) {
      ++it;
      continue;
    }
    if (it->second.reply && last_reload_) {
      it->second.reply->finish({{"ok", true}, {"reload", record_json(*last_reload_)}});
    }
    it = drain_waiters_.erase(it);
  }
  std::erase_if(instances_, [&](const Tracked& t) { return t.inst.get() == &inst; });
  check_stopped();
}

// ---- Actions ---------------------------------------------------------------

void Supervisor::check_group_after_exit(Instance& inst) {
  if (!inst.group_alive()) return finish(inst);
  if (since(inst.drain_started_at) >= config_of(inst).drain_timeout) {
    spdlog::warn("generation {}: processes of pid {}'s group outlived drain_timeout; killing them",
                 inst.generation(), inst.pid());
    inst.drain_killed = true;
    inst.signal_group(SIGKILL);
    return finish(inst);
  }
  inst.arm_timer(kGroupPoll);
}

void Supervisor::drain(Instance& inst) {
  if (inst.state == InstanceState::kDraining || inst.state == InstanceState::kExited) return;
  Tracked& t = *find(inst);
  const Config& config = *t.gen->config;
  inst.state = InstanceState::kDraining;
  inst.drain_started_at = Clock::now();
  spdlog::info("generation {}: sending {} to pid {} (drain_timeout {})", inst.generation(),
               signal_name(config.drain_signal), inst.pid(), format_duration(config.drain_timeout));
  inst.signal_group(config.drain_signal);
  inst.arm_timer(config.drain_timeout);
  if (t.gen->instance == &inst) t.gen->instance = nullptr;
}

void Supervisor::finish(Instance& inst) {
  if (inst.state == InstanceState::kDraining) {
    std::string how = inst.drain_killed
                          ? fmt::format("killed by SIGKILL after drain_timeout ({})",
                                        format_duration(config_of(inst).drain_timeout))
                          : fmt::format("{} after draining for {}", inst.exit_description,
                                        format_duration(since(inst.drain_started_at)));
    note_drained(inst, how);
  }
  inst.state = InstanceState::kExited;
  inst.cancel_timer();
  inst.retire();
  // What left the group was not signalled with it: give it the rest of the
  // drain timeout, then end it.
  auto drain_from =
      inst.drain_started_at != Clock::time_point{} ? inst.drain_started_at : Clock::now();
  escaped_.sweep(fmt::format("generation {} pid {}", inst.generation(), inst.pid()),
                 drain_from + config_of(inst).drain_timeout);
}

EscapedHolders::Scope Supervisor::escape_scope() const {
  EscapedHolders::Scope scope;
  scope.groups = kept_groups_;
  auto add_sockets = [&](const Generation& gen) {
    for (size_t i = 0; i < gen.sockets.size(); ++i) {
      auto inode = socket_inode(gen.sockets[i]->fd());
      bool known = std::any_of(scope.sockets.begin(), scope.sockets.end(),
                               [&](const auto& s) { return inode && s.first == *inode; });
      if (inode && !known) scope.sockets.emplace_back(*inode, gen.sockets[i]->spec().name);
    }
  };
  add_sockets(*current_);
  if (reload_) add_sockets(*reload_->gen);
  for (const Tracked& t : instances_) {
    add_sockets(*t.gen);
    scope.groups.push_back(t.inst->pid());
    if (!t.inst->exited) scope.running.push_back(t.inst->pid());
  }
  return scope;
}

void Supervisor::schedule_restart(const Instance* failed) {
  const Config& config = *current_->config;
  // A run that became ready and lasted the longest delay counts as healthy:
  // start over. One that never became ready is a failure however long it
  // took, so a slow crash loop still backs off.
  bool healthy = failed && failed->ready_at != Clock::time_point{} &&
                 since(failed->ready_at) >= config.restart_delay_max;
  if (healthy) current_->consecutive_failures = 0;
  int failures = ++current_->consecutive_failures;
  Millis delay = config.restart_delay;
  for (int i = 1; i < failures && delay < config.restart_delay_max; ++i) delay *= 2;
  delay = std::min(delay, config.restart_delay_max);
  current_->next_start_at = Clock::now() + delay;
  spdlog::info("generation {}: restarting in {} (failure {} in a row)", current_->number,
               format_duration(delay), failures);
  uv_timer_start(
      &restart_timer_,
      [](uv_timer_t* timer) noexcept {
        auto* self = static_cast<Supervisor*>(timer->data);
        self->current_->next_start_at = {};
        if (self->state_ != State::kRunning || self->reload_ || self->current_->instance) return;
        self->current_->restarts++;
        if (!self->spawn_instance(self->current_)) self->schedule_restart(nullptr);
      },
      static_cast<uint64_t>(delay.count()), 0);
}

void Supervisor::stop(std::function<void()> on_stopped) {
  if (on_stopped) on_stopped_.push_back(std::move(on_stopped));
  if (state_ != State::kRunning) return check_stopped();
  state_ = State::kStopping;
  spdlog::info("stopping: draining {} instance(s)", instances_.size());
  manager_.notify("STOPPING=1");
  uv_timer_stop(&restart_timer_);
  current_->next_start_at = {};
  for (ReloadRequest& q : queued_) {
    if (q.reply) q.reply->finish({{"ok", false}, {"error", "reload aborted: baton is stopping"}});
  }
  queued_.clear();
  if (reload_ && reload_->failure.empty()) reload_->failure = "reload aborted: baton is stopping";
  for (Tracked& t : instances_) drain(*t.inst);
  check_stopped();
}

void Supervisor::check_stopped() {
  if (state_ != State::kStopping || !instances_.empty() || !escaped_.empty()) return;
  state_ = State::kStopped;
  uv_close(reinterpret_cast<uv_handle_t*>(&restart_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&min_ready_timer_), nullptr);
  escaped_.close();
  spdlog::info("stopped");
  auto callbacks = std::move(on_stopped_);
  for (auto& cb : callbacks) cb();
}

void Supervisor::report_status() {
  std::string text;
  if (current_->instance) {
    text = fmt::format("generation {} pid {} {}", current_->number, current_->instance->pid(),
                       to_string(current_->instance->state));
  } else if (state_ == State::kRunning) {
    text = fmt::format("generation {} restarting", current_->number);
  } else {
    text = "stopping";
  }
  if (reload_ && reload_->gen->instance) {
    text += fmt::format("; reloading: generation {} pid {} {}", reload_->gen->number,
                        reload_->gen->instance->pid(), to_string(reload_->gen->instance->state));
  } else if (last_reload_) {
    text += fmt::format("; last reload {}", last_reload_->result);
  }
  manager_.notify("STATUS=" + text);
}

// ---- The reload transaction ------------------------------------------------

void Supervisor::reload(ReloadRequest request) {
  if (state_ != State::kRunning) {
    if (request.reply) request.reply->finish({{"ok", false}, {"error", "baton is stopping"}});
    return;
  }
  if (reload_) {
    spdlog::info("reload requested while generation {} is starting: queued to run after it",
                 reload_->gen->number);
    if (request.reply) {
      request.reply->event({{"event", "queued"},
                            {"message", fmt::format("a reload is in progress (generation {} is "
                                                    "starting); this one runs after it ends",
                                                    reload_->gen->number)}});
    }
    queued_.push_back(std::move(request));
    return;
  }
  start_reload({std::move(request)});
}

void Supervisor::broadcast(const std::string& message) {
  spdlog::info("reload: {}", message);
  if (!reload_) return;
  for (ReloadRequest& r : reload_->requests) {
    if (r.reply) r.reply->event({{"event", "progress"}, {"message", message}});
  }
}

void Supervisor::start_reload(std::vector<ReloadRequest> requests,
                              std::optional<GenerationPlan> same) {
  auto requested_at = Clock::now();
  Result<GenerationPlan> plan = same ? Result<GenerationPlan>(std::move(*same)) : loader_();
  if (!plan) {
    std::string why = fmt::format("refused, nothing was changed: {}", plan.error().message);
    spdlog::error("reload {}", why);
    ReloadRecord record;
    record.requested_at = requested_at;
    record.result = "refused";
    record.error = why;
    last_reload_ = record;
    for (ReloadRequest& r : requests) {
      if (r.reply)
        r.reply->finish({{"ok", false}, {"error", why}, {"reload", record_json(record)}});
    }
    return;
  }
  reload_ = std::make_unique<Reload>();
  reload_->requests = std::move(requests);
  reload_->gen = std::make_shared<Generation>();
  reload_->gen->number = next_generation_++;
  reload_->gen->config = std::move(plan->config);
  reload_->gen->sockets = std::move(plan->sockets);
  ReloadRecord& record = reload_->record;
  record.requested_at = requested_at;
  record.generation = reload_->gen->number;
  record.replaced_generation = current_->number;
  record.replaced_pid = current_->instance ? current_->instance->pid() : 0;
  uv_timer_stop(&restart_timer_);  // the new generation takes over from a crash loop too
  current_->next_start_at = {};
  manager_.notify("RELOADING=1");
  broadcast(fmt::format("config ok; starting generation {}", reload_->gen->number));

  Status spawned = spawn_instance(reload_->gen);
  reload_->inst = reload_->gen->instance;
  if (!spawned) {
    reload_->failure = fmt::format("could not be started: {}", spawned.error().message);
    return roll_back(nullptr);
  }
  record.exec_at = reload_->inst->started_at;
  record.pid = reload_->inst->pid();
  broadcast(fmt::format("generation {}: started pid {}", record.generation, record.pid));
}

void Supervisor::commit_reload(Tracked& t) {
  ReloadRecord& record = reload_->record;
  Instance* old = current_->instance;
  current_ = t.gen;
  if (record.ready_at == Clock::time_point{}) {
    record.ready_at = Clock::now();
    broadcast(fmt::format("generation {}: pid {} ready after {}", record.generation, record.pid,
                          format_duration(Millis(between_ms(record.exec_at, record.ready_at)))));
  } else {
    broadcast(fmt::format("generation {}: pid {} stayed up for min_ready ({})", record.generation,
                          record.pid, format_duration(t.gen->config->min_ready)));
  }
  if (old) {
    drain(*old);
    record.drain_sent_at = Clock::now();
    broadcast(fmt::format("generation {}: pid {} told to drain ({}, drain_timeout {})",
                          record.replaced_generation, old->pid(),
                          signal_name(config_of(*old).drain_signal),
                          format_duration(config_of(*old).drain_timeout)));
  }
  record.result = "ok";
  ++reloads_;
  last_reload_ = record;
  spdlog::info(
      "reload to generation {} done: request to exec {}ms, exec to READY {}ms, READY to drain "
      "signal {}ms",
      record.generation, between_ms(record.requested_at, record.exec_at),
      between_ms(record.exec_at, record.ready_at),
      between_ms(record.ready_at, record.drain_sent_at));
  for (ReloadRequest& r : reload_->requests) {
    if (!r.reply) continue;
    if (r.wait_drained && old) {
      r.reply->event({{"event", "draining"}, {"reload", record_json(record)}});
      drain_waiters_.emplace_back(old, std::move(r));
    } else {
      r.reply->finish({{"ok", true}, {"reload", record_json(record)}});
    }
  }
  end_reload();
}

void Supervisor::roll_back(const Instance* failed) {
  Reload& r = *reload_;
  r.record.result = state_ == State::kRunning ? "rolled back" : "aborted";
  r.record.error = fmt::format("generation {}{} {}", r.record.generation,
                               r.record.pid ? fmt::format(" pid {}", r.record.pid) : "", r.failure);
  std::string serving = serving_after_rollback();
  spdlog::error("reload rolled back: {}; {}", r.record.error, serving);
  nlohmann::json tail = nlohmann::json::array();
  if (failed) {
    for (const std::string& line : failed->last_stderr()) tail.push_back(line);
  }
  last_reload_ = r.record;
  for (ReloadRequest& req : r.requests) {
    if (!req.reply) continue;
    req.reply->finish({{"ok", false},
                       {"error", fmt::format("{}; {}", r.record.error, serving)},
                       {"stderr", tail},
                       {"reload", record_json(r.record)}});
  }
  end_reload();
  if (state_ == State::kRunning && !current_->instance) schedule_restart(nullptr);
}

std::string Supervisor::serving_after_rollback() const {
  if (state_ != State::kRunning) {
    return fmt::format("generation {} is draining", current_->number);
  }
  if (current_->instance) {
    return fmt::format("generation {} (pid {}) keeps serving", current_->number,
                       current_->instance->pid());
  }
  return fmt::format("generation {} keeps its place (no process is running; it restarts)",
                     current_->number);
}

void Supervisor::end_reload() {
  reload_.reset();
  uv_timer_stop(&min_ready_timer_);
  // Ends RELOADING=1 whatever the outcome: the service serves either way.
  bool serving = current_->instance && current_->instance->state == InstanceState::kReady;
  if (state_ == State::kRunning && (told_manager_ready_ || serving)) {
    told_manager_ready_ = true;
    manager_.notify("READY=1");
  }
  report_status();
  if (state_ != State::kRunning || queued_.empty()) return;
  std::vector<ReloadRequest> next = std::move(queued_);
  queued_.clear();
  start_reload(std::move(next));
}

void Supervisor::note_drained(const Instance& inst, const std::string& how) {
  spdlog::info("generation {}: pid {} {}", inst.generation(), inst.pid(), how);
  if (!last_reload_ || last_reload_->replaced_pid != inst.pid()) return;
  last_reload_->drained_at = Clock::now();
  last_reload_->drain_result = how;
}

// ---- Status ----------------------------------------------------------------

nlohmann::json Supervisor::status() const {
  using nlohmann::json;
  json sockets = json::array();
  for (size_t i = 0; i < current_->sockets.size(); ++i) {
    const ListenSocket& s = *current_->sockets[i];
    sockets.push_back({{"name", current_->config->sockets[i].name},
                       {"url", current_->config->sockets[i].url},
                       {"kind", s.spec().kind_name()},
                       {"address", s.bound_address()}});
  }
  json instances = json::array();
  for (const Tracked& t : instances_) {
    const Instance& inst = *t.inst;
    if (inst.state == InstanceState::kExited) continue;
    json i = {{"generation", inst.generation()},
              {"pid", inst.pid()},
              {"state", to_string(inst.state)},
              {"uptime_ms", since(inst.started_at).count()},
              {"status", inst.status_text}};
    if (inst.ready_at != Clock::time_point{}) {
      i["ready_after_ms"] = between_ms(inst.started_at, inst.ready_at);
    }
    if (inst.state == InstanceState::kDraining) {
      i["draining_for_ms"] = since(inst.drain_started_at).count();
    }
    instances.push_back(std::move(i));
  }
  const char* states[] = {"running", "stopping", "stopped"};
  json s = {{"name", current_->config->name},
            {"pid", getpid()},
            {"state", states[static_cast<int>(state_)]},
            {"uptime_ms", since(started_at_).count()},
            {"control", current_->config->control_path},
            {"generation", current_->number},
            {"restarts", current_->restarts},
            {"reloads", reloads_},
            {"reloading", reload_ ? json(reload_->gen->number) : json(nullptr)},
            {"sockets", std::move(sockets)},
            {"instances", std::move(instances)}};
  s["last_reload"] = last_reload_ ? record_json(*last_reload_) : json(nullptr);
  s["consecutive_failures"] = current_->consecutive_failures;
  s["last_exit"] = current_->last_exit.empty()
                       ? json(nullptr)
                       : json{{"reason", current_->last_exit},
                              {"ago_ms", since(current_->last_exit_at).count()}};
  s["next_start_in_ms"] = current_->next_start_at == Clock::time_point{}
                              ? json(nullptr)
                              : json(std::max<int64_t>(0, -since(current_->next_start_at).count()));
  return s;
}

}  // namespace baton

// The instance lifecycle. kInstanceTable below is the whole of it: each
// cell names what an instance in a state does on an event, and nothing else
// moves an instance. The timer's meaning is the state's (see instance.h).
// Notify messages are dispatched as events in the column order; in every
// state but exited, STATUS= is recorded and MAINPID= from the main pid
// names the pid whose messages count.
//
// Who an instance is changes what some cells do: the serving generation's
// ("current"), the candidate of a reload in progress, or a replaced one.
// "restart later" applies to the current generation while no reload is in
// progress (the delay doubles with each failure in a row, restart_delay ..
// restart_delay_max); the candidate's events go to the reload table
// (reload.cc). A reload is a transaction: the old generation serves until
// the new one is committed, and is untouched when the new one fails.
#include "supervisor.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "child_environment.h"
#include "shim_support.h"

namespace baton {
namespace fs = std::filesystem;
namespace {

/// While a drained instance's main pid has exited but other processes of
/// its group live on, the group is checked this often.
constexpr Millis kGroupPoll{50};

std::string describe_exit(int64_t status, int signal) {
  if (signal != 0) return fmt::format("was killed by {}", signal_name(signal));
  if (status == 127) return "exited with status 127 (the command could not be executed)";
  return fmt::format("exited with status {}", status);
}

}  // namespace

using S = Supervisor;
const S::Action S::kNop = &S::ignore;
// clang-format off
const S::Action S::kInstanceTable[kInstanceStates][kInstanceEvents] = {
//                  WATCHDOG=1         ERRNO=,STOPPING=1  EXTEND_TIMEOUT    READY=1       exit                   timer                 drain            released  probe
/* starting     */ {kNop,              &S::fail_start,    &S::extend_start, &S::notified, &S::exit_starting,     &S::ready_timed_out,  &S::start_drain, kNop,     &S::probe_done},
/* failing      */ {kNop,              kNop,              kNop,             kNop,         &S::exit_failing,      kNop,                 kNop,            kNop,     kNop},
/* ready        */ {&S::feed_watchdog, kNop,              kNop,             kNop,         &S::exit_ready,        &S::watchdog_expired, &S::start_drain, kNop,     kNop},
/* draining     */ {kNop,              kNop,              kNop,             kNop,         &S::exit_draining,     &S::drain_timed_out,  kNop,            kNop,     kNop},
/* drain-killed */ {kNop,              kNop,              kNop,             kNop,         &S::exit_drain_killed, kNop,                 kNop,            kNop,     kNop},
/* lingering    */ {kNop,              kNop,              kNop,             kNop,         kNop,                  &S::poll_group,       kNop,            kNop,     kNop},
/* exited       */ {kNop,              kNop,              kNop,             kNop,         kNop,                  kNop,                 kNop,            &S::forget, kNop},
};
// clang-format on
// What the cells do, in table order:
//   starting  fail_start       SIGKILL the group -> failing (a candidate's reload fails)
//             extend_start     re-arm the timer for the extension asked for
//             notified         READY=1 counts (ready.notify): once every
//                              readiness check has passed, become_ready:
//                              -> ready, arm the watchdog; a candidate: reload table
//             probe_done       a probe attempt ended: passed, try the next
//                              probe or become_ready; failed, try again after
//                              ready.interval (checks.cc)
//             exit_starting    "exited before READY=1" -> exited; restart later
//             ready_timed_out  fail_start("sent no READY=1 within ready_timeout",
//                              or what it still waited for and the last
//                              probe results)
//             start_drain      send drain_signal, arm drain_timeout -> draining
//   failing   exit_failing     -> exited for the failure; restart later
//   ready     feed_watchdog    re-arm the watchdog
//             exit_ready       "exited while ready" -> exited; restart later
//             watchdog_expired a candidate: fail_start; the current one: a
//                              reload onto the same config replaces it
//   draining  exit_draining    group gone: -> exited; else -> lingering, poll it
//             drain_timed_out  SIGKILL the group -> drain-killed
//   drain-    exit_drain_     -> exited ("killed by SIGKILL after drain_timeout")
//   killed      killed
//   lingering poll_group       group gone: -> exited; drain_timeout over: SIGKILL,
//                              -> exited; else poll again
//   exited    forget           the candidate's: roll the reload back; answer
//                              who waited for it to drain; drop it

Supervisor::Supervisor(Os& os, LifecycleListener& listener, GenerationPlan first,
                       std::vector<std::string> base_environment, std::string notify_socket,
                       Loader loader)
    : os_(os),
      listener_(listener),
      loader_(std::move(loader)),
      base_environment_(std::move(base_environment)),
      notify_socket_(std::move(notify_socket)),
      started_at_(os.now()) {
  os_.watch_escaped([this] { return escape_scope(); }, [this] { check_stopped(); });
  current_ = make_generation(std::move(first));
  hold_timer_ = os_.timer([this] { reload_event(ReloadEvent::kHoldElapsed); });
  standby_timer_ = os_.timer([this] {
    if (!standby_) return;
    drop_standby(
        fmt::format("its standby window ({}) is over", format_duration(current_->config->standby)));
  });
}

Supervisor::~Supervisor() = default;

int Generation::ready_count() const {
  return static_cast<int>(std::count_if(instances.begin(), instances.end(), [](const Instance* i) {
    return i->state == InstanceState::kReady;
  }));
}

Instance* Generation::in_slot(int number) const {
  auto it = std::find_if(instances.begin(), instances.end(),
                         [number](const Instance* i) { return i->slot == number; });
  return it == instances.end() ? nullptr : *it;
}

int Generation::restarts() const {
  int total = 0;
  for (const InstanceSlot& s : slots) total += s.restarts;
  return total;
}

const InstanceSlot* Generation::last_failed() const {
  const InstanceSlot* last = nullptr;
  for (const InstanceSlot& s : slots) {
    if (!s.last_exit.empty() && (!last || s.last_exit_at > last->last_exit_at)) last = &s;
  }
  return last;
}

const InstanceSlot* Generation::next_restart() const {
  const InstanceSlot* next = nullptr;
  for (const InstanceSlot& s : slots) {
    if (s.next_start_at == Clock::time_point{}) continue;
    if (!next || s.next_start_at < next->next_start_at) next = &s;
  }
  return next;
}

Release Supervisor::resolve_release(const Config& config) const {
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& entry : base_environment_) {
    if (entry.starts_with("PATH=")) path = entry.substr(5);
  }
  for (const auto& [key, value] : config.environment) {
    if (key == "PATH") path = value;
  }
  Release release;
  std::error_code ec;
  std::string found = config.command.empty() ? "" : find_executable(config.command[0], path);
  if (!found.empty()) {
    fs::path real = fs::canonical(found, ec);
    release.executable = ec ? found : real.string();
  }
  std::string wd = config.working_directory;
  if (wd.empty()) wd = fs::current_path(ec).string();
  fs::path real = fs::canonical(wd, ec);
  release.working_directory = ec ? wd : real.string();
  return release;
}

std::shared_ptr<Generation> Supervisor::make_generation(GenerationPlan plan) {
  auto gen = std::make_shared<Generation>();
  gen->number = next_generation_++;
  gen->release = plan.release ? std::move(*plan.release) : resolve_release(*plan.config);
  gen->config = std::move(plan.config);
  gen->protocol = protocol_for(*gen->config);
  gen->sockets = std::move(plan.sockets);
  gen->slots.resize(static_cast<size_t>(std::max(1, gen->config->instances)));
  Generation* raw = gen.get();
  for (size_t i = 0; i < gen->slots.size(); ++i) {
    InstanceSlot& slot = gen->slots[i];
    slot.number = static_cast<int>(i) + 1;
    slot.restart_timer =
        os_.timer([this, raw, n = slot.number] { restart_due(*raw, raw->slot(n)); });
  }
  return gen;
}

void Supervisor::start() {
  for (InstanceSlot& slot : current_->slots) {
    if (!spawn_instance(current_, slot.number)) schedule_restart(slot, nullptr);
  }
}

void Supervisor::dispatch(Instance& inst, InstanceEvent event, const EventArgs& args) {
  Action action = kInstanceTable[static_cast<int>(inst.state)][static_cast<int>(event)];
  (this->*action)(inst, args);
}

Millis Supervisor::since(Clock::time_point t) const {
  return std::chrono::duration_cast<Millis>(os_.now() - t);
}

// ---- Starting instances ---------------------------------------------------

Status Supervisor::spawn_instance(const std::shared_ptr<Generation>& gen, int slot_number) {
  const Config& config = *gen->config;
  SpawnSpec spec;
  // The trampoline (`baton __exec`) sets LISTEN_PID to its own pid, which
  // exec keeps, then execs the command: libuv offers no hook between fork
  // and exec, and sd_listen_fds() ignores fds whose LISTEN_PID is not its pid.
  // It runs the generation's release: the program and directory resolved
  // when the generation was created, whatever a symlink says now.
  spec.argv = {"/proc/self/exe", "__exec"};
  if (!gen->release.executable.empty()) {
    spec.argv.insert(spec.argv.end(), {"--exe", gen->release.executable});
  }
  spec.argv.insert(spec.argv.end(), config.command.begin(), config.command.end());
  // A restart after a crash is the same instance (slot) again.
  spec.env = child_environment(base_environment_, config, gen->sockets.size(), notify_socket_,
                               *gen->protocol, {gen->number, slot_number});
  spec.working_directory = gen->release.working_directory;
  for (const SharedSocket& s : gen->sockets) spec.fds.push_back(s->fd());

  auto inst = std::make_unique<Instance>();
  Instance* raw = inst.get();
  Process::Events events{
      [this, raw](int64_t status, int sig) {
        // Recorded before dispatch, as STATUS= is: every exit cell reads it.
        raw->exit_description = describe_exit(status, sig);
        raw->exit_status = sig == 0 ? static_cast<int>(status) : -1;
        dispatch(*raw, InstanceEvent::kExit);
      },
      [this, raw] { dispatch(*raw, InstanceEvent::kReleased); },
  };
  InstanceSlot& slot = gen->slot(slot_number);
  auto process = os_.spawn(spec, gen->number, std::move(events));
  if (!process) {
    spdlog::error("generation {}: {}", gen->number, process.error().message);
    slot.last_exit = process.error().message;
    slot.last_exit_at = os_.now();
    return process.error();
  }
  inst->gen = gen;
  inst->slot = slot_number;
  inst->process = std::move(*process);
  // The spawn returns once the child has exec'd (the trampoline): that is
  // when the instance starts; time spent spawning counts before it.
  inst->started_at = os_.now();
  inst->notify_pid = inst->pid();
  inst->timer = os_.timer([this, raw] { dispatch(*raw, InstanceEvent::kTimer); });
  inst->timer->arm(config.ready_timeout);
  gen->instances.push_back(raw);
  start_checks(*raw);
  std::string which = gen->slots.size() > 1
                          ? fmt::format(" instance {} of {}", slot_number, gen->slots.size())
                          : "";
  spdlog::info("generation {}{}: started pid {} ({})", gen->number, which, raw->pid(),
               fmt::join(config.command, " "));
  instances_.push_back(std::move(inst));
  report_status();
  return {};
}

Instance* Supervisor::find_live(pid_t pid) {
  // A started pid is unique among live instances: it wins over any MAINPID=.
  for (auto& i : instances_) {
    if (!i->exited() && i->pid() == pid) return i.get();
  }
  // A pid named with MAINPID= counts only while it is still in the
  // instance's process group: once it has exited, its number can be reused
  // by another generation's process, whose messages must not be credited
  // to this instance.
  pid_t group = os_.process_group_of(pid);
  for (auto& i : instances_) {
    if (!i->exited() && i->notify_pid == pid && group == i->pid()) return i.get();
  }
  for (auto& i : instances_) {
    if (i->exited() || group != i->pid()) continue;
    auto access = i->gen->config->notify_access;
    if (i->gen->protocol->any_member_may_notify() || access == Config::NotifyAccess::kAll) {
      return i.get();
    }
    if (access == Config::NotifyAccess::kExec && os_.parent_of(pid) == i->pid()) return i.get();
  }
  return nullptr;
}

bool Supervisor::spawned(pid_t pid) const {
  return std::any_of(instances_.begin(), instances_.end(),
                     [&](const auto& i) { return i->pid() == pid; });
}

bool Supervisor::is_candidate(const Instance& inst) const {
  return reload_ && inst.gen == reload_gen();
}

// ---- Notify messages -------------------------------------------------------

void Supervisor::handle_notify(pid_t pid, const NotifyMessage& msg) {
  Instance* found = find_live(pid);
  if (!found) return foreign_notify(pid, msg);
  Instance& inst = *found;
  if (msg.main_pid && pid == inst.pid() && *msg.main_pid != inst.notify_pid) {
    spdlog::info("[gen {} pid {}] MAINPID={}", inst.generation(), pid, *msg.main_pid);
    inst.notify_pid = *msg.main_pid;
  }
  if (msg.status) {
    inst.status_text = *msg.status;
    spdlog::info("[gen {} pid {}] STATUS={}", inst.generation(), pid, *msg.status);
  }
  if (msg.watchdog) dispatch(inst, InstanceEvent::kWatchdog);
  std::optional<std::string> failed = inst.gen->protocol->on_shim_message(inst, msg);
  if (!failed && msg.errno_value) {
    failed = fmt::format("reported ERRNO={} ({}) before READY=1", *msg.errno_value,
                         std::strerror(*msg.errno_value));
  }
  if (!failed && msg.stopping) failed = "sent STOPPING=1 before READY=1";
  if (failed) return dispatch(inst, InstanceEvent::kStartFailed, EventArgs::failed(*failed));
  if (msg.extend_timeout_usec) {
    Millis extra(static_cast<int64_t>(*msg.extend_timeout_usec / 1000));
    dispatch(inst, InstanceEvent::kExtendTimeout, EventArgs::extend(extra));
  }
  if (msg.ready) dispatch(inst, InstanceEvent::kReady);
}

void Supervisor::foreign_notify(pid_t pid, const NotifyMessage& msg) {
  std::string command = os_.command_name(pid);
  std::string sender = fmt::format("pid {} ({})", pid, command.empty() ? "gone" : command);
  // From a process of a starting instance's group: its READY=1 is why the
  // instance may time out, so the timeout says so.
  pid_t group = os_.process_group_of(pid);
  if (group == -1 && command.empty()) {
    // Gone before its message was read (an app's STOPPING=1 as it exits):
    // nothing to tell whom it came from, and the 10 s line is kept for a
    // sender the operator can do something about.
    spdlog::debug("notify: ignored a message from pid {}, which is gone", pid);
    return;
  }
  Instance* member = nullptr;
  for (auto& i : instances_) {
    if (!i->exited() && group == i->pid()) member = i.get();
  }
  if (member && msg.ready && member->state == InstanceState::kStarting)
    member->foreign_ready = sender;
  auto more = foreign_notify_.allow();
  if (!more) return;
  std::string what = msg.ready ? "READY=1" : "a message";
  if (member) {
    spdlog::info(
        "[gen {} pid {}] ignored {} from {}, another process of its group: with notify_access = "
        "\"{}\" only the main pid's messages count (the main pid can name another with "
        "MAINPID=; notify_access = \"exec\" also counts the processes it started, \"all\" "
        "any process of its group){}",
        member->generation(), member->pid(), what, sender,
        member->gen->config->notify_access == Config::NotifyAccess::kExec ? "exec" : "main", *more);
  } else {
    spdlog::info(
        "notify: ignored {} from {}: only an instance's main pid, or the pid it names with "
        "MAINPID=, may send READY=1 and the other messages{}",
        what, sender, *more);
  }
}

// ---- The instance table's actions ------------------------------------------

void Supervisor::become_ready(Instance& inst, const EventArgs&) {
  inst.state = InstanceState::kReady;
  inst.ready_at = os_.now();
  inst.timer->cancel();
  stop_probes(inst);
  arm_watchdog(inst);
  std::string ready = fmt::format(
      "generation {}: pid {} ready after {}", inst.generation(), inst.pid(),
      format_duration(std::chrono::duration_cast<Millis>(inst.ready_at - inst.started_at)));
  spdlog::info("{}", ready);
  if (is_candidate(inst)) return reload_event(ReloadEvent::kCandidateReady, ready);
  if (reload_ && inst.gen == current_) reload_event(ReloadEvent::kRestored);
  if (state_ == State::kBooting) tell_serving();
  report_status();
}

void Supervisor::fail_start(Instance& inst, const EventArgs& args) {
  kill_instance(inst, args.reason);
}

void Supervisor::kill_instance(Instance& inst, const std::string& reason) {
  inst.failure = reason;
  inst.state = InstanceState::kFailing;
  inst.timer->cancel();
  stop_probes(inst);
  spdlog::error("generation {}: pid {} {}; killing it", inst.generation(), inst.pid(), reason);
  inst.process->signal_group(SIGKILL);
  if (is_candidate(inst)) candidate_ended(inst, reason);
}

void Supervisor::extend_start(Instance& inst, const EventArgs& args) {
  spdlog::info("[gen {} pid {}] asks for {} more to start", inst.generation(), inst.pid(),
               format_duration(args.extra));
  inst.timer->arm(args.extra);
}

void Supervisor::ready_timed_out(Instance& inst, const EventArgs&) {
  std::string reason = checks_timeout_reason(inst);
  kill_instance(inst, inst.gen->protocol->ready_timeout_reason(inst, reason));
}

void Supervisor::exit_starting(Instance& inst, const EventArgs&) {
  std::string reason = fmt::format("{} before READY=1", inst.exit_description);
  spdlog::error("generation {}: pid {} {}", inst.generation(), inst.pid(), reason);
  end_run(inst, reason);
}

void Supervisor::exit_failing(Instance& inst, const EventArgs&) {
  end_run(inst, inst.failure);
}

void Supervisor::exit_ready(Instance& inst, const EventArgs&) {
  std::string reason = fmt::format("{} while ready", inst.exit_description);
  if (is_candidate(inst) && reload_->phase == ReloadPhase::kHolding) {
    reason += fmt::format(" within min_ready ({})", format_duration(inst.gen->config->min_ready));
  } else if (is_candidate(inst) && reload_->phase == ReloadPhase::kCanary) {
    reason += " during its canary";
  }
  spdlog::error("generation {}: pid {} {}", inst.generation(), inst.pid(), reason);
  end_run(inst, reason);
}

void Supervisor::end_run(Instance& inst, const std::string& reason) {
  Generation& gen = *inst.gen;
  InstanceSlot& slot = gen.slot(inst.slot);
  stop_probes(inst);
  std::erase(gen.instances, &inst);
  slot.last_exit = fmt::format("pid {} {}", inst.pid(), reason);
  slot.last_exit_at = os_.now();
  if (inst.process->group_alive()) inst.process->signal_group(SIGKILL);  // orphaned workers
  finish(inst);
  if (is_candidate(inst)) {
    candidate_ended(inst, reason);
  } else if (inst.gen == current_ && running() && !reload_) {
    if (cannot_execute(inst)) {
      slot.last_exit += "; not restarted: the command cannot be executed (fix it, then reload)";
      spdlog::error(
          "generation {}: not restarting it: the command cannot be executed (exit status {} "
          "before it was ever ready); the sockets stay open; fix the command, then `baton reload`",
          gen.number, inst.exit_status);
    } else {
      schedule_restart(slot, &inst);
    }
  } else if (inst.gen == current_ && reload_) {
    reload_event(ReloadEvent::kRestored);
  }
  report_status();
}

void Supervisor::start_drain(Instance& inst, const EventArgs&) {
  const Config& config = *inst.gen->config;
  inst.state = InstanceState::kDraining;
  inst.drain_started_at = os_.now();
  stop_probes(inst);
  spdlog::info("generation {}: sending {} to pid {} (drain_timeout {})", inst.generation(),
               signal_name(config.drain_signal), inst.pid(), format_duration(config.drain_timeout));
  inst.process->signal_group(config.drain_signal);
  inst.timer->arm(config.drain_timeout);
  std::erase(inst.gen->instances, &inst);
}

void Supervisor::feed_watchdog(Instance& inst, const EventArgs&) {
  arm_watchdog(inst);
}

void Supervisor::arm_watchdog(Instance& inst) {
  Millis every = inst.gen->config->watchdog_sec;
  if (every.count() > 0) inst.timer->arm(every);
}

void Supervisor::watchdog_expired(Instance& inst, const EventArgs&) {
  Millis every = inst.gen->config->watchdog_sec;
  spdlog::error("generation {}: pid {} sent no WATCHDOG=1 for {}; replacing it", inst.generation(),
                inst.pid(), format_duration(every));
  if (is_candidate(inst)) {
    return kill_instance(
        inst, fmt::format("sent no WATCHDOG=1 for {} within min_ready", format_duration(every)));
  }
  // A replaced generation's instance is drained already; during a reload,
  // the reload in progress replaces the current one.
  if (!running() || inst.gen != current_ || reload_) return;
  // Others of its generation serve while it is replaced: restart its slot.
  if (current_->slots.size() > 1) {
    return kill_instance(inst, fmt::format("sent no WATCHDOG=1 for {}", format_duration(every)));
  }
  start_reload({}, GenerationPlan{current_->config, current_->sockets, current_->release});
}

void Supervisor::exit_draining(Instance& inst, const EventArgs&) {
  if (!inst.process->group_alive()) return finish_drained(inst, false);
  inst.state = InstanceState::kLingering;
  inst.timer->arm(kGroupPoll);
  report_status();
}

void Supervisor::drain_timed_out(Instance& inst, const EventArgs&) {
  spdlog::warn("generation {}: pid {} still running after drain_timeout ({}); killing it",
               inst.generation(), inst.pid(), format_duration(inst.gen->config->drain_timeout));
  inst.state = InstanceState::kDrainKilled;
  inst.process->signal_group(SIGKILL);
}

void Supervisor::exit_drain_killed(Instance& inst, const EventArgs&) {
  if (inst.process->group_alive()) inst.process->signal_group(SIGKILL);
  finish_drained(inst, true);
}

void Supervisor::poll_group(Instance& inst, const EventArgs&) {
  if (!inst.process->group_alive()) return finish_drained(inst, false);
  if (since(inst.drain_started_at) < inst.gen->config->drain_timeout) {
    return inst.timer->arm(kGroupPoll);
  }
  spdlog::warn("generation {}: processes of pid {}'s group outlived drain_timeout; killing them",
               inst.generation(), inst.pid());
  inst.process->signal_group(SIGKILL);
  finish_drained(inst, true);
}

void Supervisor::finish_drained(Instance& inst, bool killed) {
  std::string how = killed ? fmt::format("killed by SIGKILL after drain_timeout ({})",
                                         format_duration(inst.gen->config->drain_timeout))
                           : fmt::format("{} after draining for {}", inst.exit_description,
                                         format_duration(since(inst.drain_started_at)));
  note_drained(inst, how);
  finish(inst);
  report_status();
}

void Supervisor::finish(Instance& inst) {
  inst.state = InstanceState::kExited;
  inst.timer->cancel();
  inst.process->retire();
  // What left the group was not signalled with it: give it the rest of the
  // drain timeout, then end it.
  auto drain_from =
      inst.drain_started_at != Clock::time_point{} ? inst.drain_started_at : os_.now();
  os_.sweep_escaped(fmt::format("generation {} pid {}", inst.generation(), inst.pid()),
                    drain_from + inst.gen->config->drain_timeout);
}

void Supervisor::forget(Instance& inst, const EventArgs&) {
  std::shared_ptr<Generation> gen = inst.gen;
  if (reload_ && reload_->failed_pid == inst.pid() && gen == reload_gen()) {
    const auto& tail = inst.process->last_stderr();
    reload_->failed_stderr.assign(tail.begin(), tail.end());
  }
  std::erase_if(instances_, [&](const auto& i) { return i.get() == &inst; });
  if (reload_ && gen == reload_gen() && !has_instances(*gen)) {
    reload_event(ReloadEvent::kCandidateReleased);
  }
  answer_drain_waiters();
  run_after_drained();
  check_stopped();
}

bool Supervisor::has_instances(const Generation& gen) const {
  return std::any_of(instances_.begin(), instances_.end(),
                     [&](const auto& i) { return i->gen.get() == &gen; });
}

// ---- Restarts and stop -----------------------------------------------------

bool Supervisor::cannot_execute(const Instance& inst) {
  // 127 and 126 are the shell's "not found" and "not executable"; baton's
  // exec trampoline and the dynamic loader (a missing library) use 127 too.
  // An app that was ready once may use them for its own reasons.
  bool never_ready = inst.ready_at == Clock::time_point{};
  return never_ready && (inst.exit_status == 127 || inst.exit_status == 126);
}

void Supervisor::schedule_restart(InstanceSlot& slot, const Instance* failed) {
  const Config& config = *current_->config;
  // A run that became ready and lasted the longest delay counts as healthy:
  // start over. One that never became ready is a failure however long it
  // took, so a slow crash loop still backs off.
  bool healthy = failed && failed->ready_at != Clock::time_point{} &&
                 since(failed->ready_at) >= config.restart_delay_max;
  if (healthy) slot.consecutive_failures = 0;
  int failures = ++slot.consecutive_failures;
  Millis delay = config.restart_delay;
  for (int i = 1; i < failures && delay < config.restart_delay_max; ++i) delay *= 2;
  delay = std::min(delay, config.restart_delay_max);
  slot.next_start_at = os_.now() + delay;
  std::string which = current_->slots.size() > 1 ? fmt::format(" instance {}", slot.number) : "";
  spdlog::info("generation {}{}: restarting in {} (failure {} in a row)", current_->number, which,
               format_duration(delay), failures);
  slot.restart_timer->arm(delay);
}

void Supervisor::restart_due(Generation& gen, InstanceSlot& slot) {
  slot.next_start_at = {};
  if (!running() || reload_ || &gen != current_.get() || gen.in_slot(slot.number)) return;
  slot.restarts++;
  counters_.restarts++;
  if (!spawn_instance(current_, slot.number)) schedule_restart(slot, nullptr);
}

void Supervisor::restart_empty_slots() {
  if (!running()) return;
  for (InstanceSlot& slot : current_->slots) {
    if (!current_->in_slot(slot.number) && slot.next_start_at == Clock::time_point{}) {
      schedule_restart(slot, nullptr);
    }
  }
}

void Supervisor::cancel_restarts(Generation& gen) {
  for (InstanceSlot& slot : gen.slots) {
    slot.restart_timer->cancel();
    slot.next_start_at = {};
  }
}

void Supervisor::stop(std::function<void()> on_stopped) {
  if (on_stopped) on_stopped_.push_back(std::move(on_stopped));
  if (!running()) return check_stopped();
  state_ = State::kStopping;
  spdlog::info("stopping: draining {} instance(s)", instances_.size());
  listener_.stopping();
  cancel_restarts(*current_);
  standby_timer_->cancel();
  standby_.reset();  // drained below with every other instance
  for (ReloadRequest& q : queued_) {
    if (q.client) q.client->finished(ReloadOutcome::failure("reload aborted: baton is stopping"));
  }
  queued_.clear();
  // An after_drained hook that runs finishes (stop waits for it); those not
  // yet due will not run.
  size_t keep = after_drained_running_ ? 1 : 0;
  for (size_t i = keep; i < after_drained_.size(); ++i) {
    for (ReloadRequest& w : after_drained_[i].waiters) {
      w.client->finished(ReloadOutcome::failure(
          "the reload is done, but its after_drained hook did not run: baton is stopping",
          last_reload_));
    }
  }
  after_drained_.resize(std::min(after_drained_.size(), keep));
  if (reload_) reload_event(ReloadEvent::kStop);
  for (auto& i : instances_) dispatch(*i, InstanceEvent::kDrain);
  check_stopped();
}

void Supervisor::check_stopped() {
  if (state_ != State::kStopping || !instances_.empty() || !os_.escaped_empty() ||
      after_drained_running_) {
    return;
  }
  state_ = State::kStopped;
  for (InstanceSlot& slot : current_->slots) slot.restart_timer.reset();
  hold_timer_.reset();
  standby_timer_.reset();
  os_.close();
  spdlog::info("stopped");
  auto callbacks = std::move(on_stopped_);
  for (auto& cb : callbacks) cb();
}

EscapeScope Supervisor::escape_scope() const {
  EscapeScope scope;
  scope.groups = kept_groups_;
  auto add_sockets = [&](const Generation& gen) {
    for (const SharedSocket& s : gen.sockets) scope.sockets.emplace_back(s->fd(), s->spec().name);
  };
  add_sockets(*current_);
  if (reload_) add_sockets(*reload_gen());
  for (const auto& i : instances_) {
    add_sockets(*i->gen);
    scope.groups.push_back(i->pid());
    if (!i->exited()) scope.running.push_back(i->pid());
  }
  return scope;
}

void Supervisor::tell_serving() {
  bool first = state_ == State::kBooting;
  state_ = State::kServing;
  listener_.serving(first);
}

void Supervisor::report_status() {
  listener_.status_changed(snapshot());
}

// ---- Status ----------------------------------------------------------------

std::vector<StatusSnapshot::CheckView> Supervisor::candidate_checks() const {
  std::vector<StatusSnapshot::CheckView> out;
  const Reload& r = *reload_;
  if (r.to_standby) return out;  // its instances passed their checks when they started
  const Config& config = *r.gen->config;
  const ReloadRecord& record = r.record;
  const bool failed = r.phase == ReloadPhase::kFailed;
  const bool started = record.exec_at != Clock::time_point{};
  const bool ready = record.ready_at != Clock::time_point{};
  const Clock::time_point now = os_.now();
  if (config.pre_reload) {
    std::string name = "pre_reload " + check_name(*config.pre_reload);
    if (r.phase == ReloadPhase::kPreReload) {
      out.push_back({name, "running", ""});
    } else {
      out.push_back({name, started ? "passed" : "failed", started ? "" : r.failure});
    }
  }
  if (ready) {
    out.push_back({"ready", "passed",
                   fmt::format("after {}", format_duration(std::chrono::duration_cast<Millis>(
                                               record.ready_at - record.exec_at)))});
  } else if (failed) {
    out.push_back({"ready", started ? "failed" : "skipped", started ? r.failure : ""});
  } else {
    std::string waiting;  // what the first instance still starting waits for
    for (const Instance* i : r.gen->instances) {
      if (i->state != InstanceState::kStarting) continue;
      waiting = fmt::format("waiting for {}", fmt::join(waiting_for(*i), ", "));
      break;
    }
    out.push_back({"ready", started ? "running" : "pending", waiting});
  }
  for (size_t k = 0; k < config.smoke.size(); ++k) {
    std::string name = "smoke " + check_name(config.smoke[k]);
    if (k < r.smoke_results.size()) {
      const Reload::SmokeResult& result = r.smoke_results[k];
      out.push_back({name, result.passed ? "passed" : "failed", result.outcome});
    } else if (r.phase == ReloadPhase::kSmoking && k == r.smoke_index) {
      out.push_back({name, "running", ""});
    } else {
      out.push_back({name, failed ? "skipped" : "pending", ""});
    }
  }
  if (config.min_ready.count() > 0) {
    std::string name = fmt::format("min_ready {}", format_duration(config.min_ready));
    if (r.phase == ReloadPhase::kHolding) {
      auto left = config.min_ready - std::chrono::duration_cast<Millis>(now - r.hold_from);
      out.push_back(
          {name, "running", fmt::format("{} left", format_duration(std::max(left, Millis(0))))});
    } else if (failed) {
      bool held = r.hold_from != Clock::time_point{};
      out.push_back({name, held ? "failed" : "skipped", held ? r.failure : ""});
    } else if (r.hold_from != Clock::time_point{}) {
      out.push_back({name, "passed", ""});
    } else {
      out.push_back({name, "pending", ""});
    }
  }
  return out;
}

StatusSnapshot Supervisor::snapshot() const {
  auto view = [](const Instance& i) {
    InstanceView v{i.generation(),     i.slot,        i.pid(), i.state, i.started_at, i.ready_at,
                   i.drain_started_at, i.status_text, {},      {}};
    if (i.state != InstanceState::kStarting) return v;
    v.waiting_for = waiting_for(i);
    v.probe_results = last_probe_results(i);
    return v;
  };
  StatusSnapshot s;
  s.name = current_->config->name;
  s.state = running() ? "running" : state_ == State::kStopping ? "stopping" : "stopped";
  s.now = os_.now();
  s.started_at = started_at_;
  s.control = current_->config->control_path;
  s.generation = current_->number;
  s.restarts = current_->restarts();
  s.instances_wanted = static_cast<int>(current_->slots.size());
  s.ready_instances = current_->ready_count();
  s.reloads = reloads_;
  if (reload_) {
    s.reloading = reload_gen()->number;
    static constexpr std::string_view kSteps[] = {"pre_reload", "starting",  "smoke",
                                                  "min_ready",  "switching", "failed",
                                                  "restoring",  "unsharing", "canary"};
    s.reload_step = kSteps[static_cast<int>(reload_->phase)];
    s.candidate_share = reload_->share;
    if (reload_->phase == ReloadPhase::kCanary) {
      StatusSnapshot::CanaryView c{reload_->canary_since, {}, reload_->watch_last};
      if (reload_->canary->hold.count() > 0)
        c.promote_at = reload_->canary_since + reload_->canary->hold;
      s.canary = c;
    }
  }
  for (size_t i = 0; i < current_->sockets.size(); ++i) {
    const ListenSocket& sock = *current_->sockets[i];
    const std::string& shared = sock.shared_reason();
    s.sockets.push_back({current_->config->sockets[i].name, current_->config->sockets[i].url,
                         std::string(sock.spec().kind_name()), sock.bound_address(),
                         shared.empty() ? "per-generation" : "shared: " + shared,
                         sock.backlog_note()});
  }
  for (const auto& i : instances_) {
    if (i->state != InstanceState::kExited) s.instances.push_back(view(*i));
  }
  if (const Instance* i = current_->instance()) s.serving = view(*i);
  if (reload_ && reload_gen()->instance()) s.candidate = view(*reload_gen()->instance());
  s.last_reload = last_reload_;
  s.earlier_reloads.assign(earlier_reloads_.begin(), earlier_reloads_.end());
  if (reload_) s.candidate_checks = candidate_checks();
  s.counters = counters_;
  const InstanceSlot* last = current_->last_failed();
  const InstanceSlot* next = current_->next_restart();
  if (last) {
    s.last_exit = last->last_exit;
    s.last_exit_at = last->last_exit_at;
  }
  if (next) s.next_start_at = next->next_start_at;
  s.consecutive_failures = next   ? next->consecutive_failures
                           : last ? last->consecutive_failures
                                  : 0;
  s.release = {current_->number, current_->release.executable, current_->release.working_directory};
  if (standby_)
    s.standby =
        StatusSnapshot::StandbyView{standby_->number, standby_->ready_count(), standby_until_};
  for (const PastRelease& p : past_releases_) {
    s.rollback_to.push_back({p.generation, p.release.executable, p.release.working_directory});
  }
  for (const InstanceSlot& slot : current_->slots) {
    if (slot.next_start_at == Clock::time_point{}) continue;
    s.restarting.push_back(
        {slot.number, slot.next_start_at, slot.last_exit, slot.consecutive_failures});
  }
  return s;
}

}  // namespace baton

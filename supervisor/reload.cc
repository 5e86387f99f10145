// The reload transaction. A reload starts a candidate generation beside the
// serving one; kReloadTable decides what each event does to it, phase by
// phase ("-": nothing):
//
//   pre_reload  hook passed: start it; hook failed: roll back; stop: abort
//   starting    ready: (once every instance started is) smoke, or hold, or
//               commit; failed: -> failed (or, once it had a share,
//               -> restoring); stop: -> failed
//   smoking     smoke passed: the next one, or hold/commit; smoke failed:
//               kill it; failed: as in starting; stop: -> failed
//   holding     min_ready elapsed: commit; failed: as in starting; stop
//   switching   poll: settled? then drain the old one; stop: the same at once
//   failed      released: roll back
//   restoring   restored: once no old instance is starting, -> unsharing
//   unsharing   poll: settled? then the candidate drains, -> failed
//   canary      promote (or the hold is over): commit; rollback, or failed:
//               -> restoring (nothing to restore: -> unsharing); stop
//
// The pre_reload hook runs before anything starts; the candidate's
// instances must then pass their readiness checks (checks.cc), then the
// smoke checks one by one, then stay up for min_ready. "commit" switches new
// connections to the candidate's listeners (one syscall per address,
// steering.h) and makes its generation current; the old generation keeps
// accepting what was queued on its own listeners before the switch until
// those queues have stayed empty for kSwitchSettle ("switching"), and only
// then is told to drain. "roll back" leaves the old one as it was. Either
// ends the transaction and answers its clients.
//
// strategy = "rolling" starts max_surge instances at a time: each step that
// passes its checks (the smoke checks run once, at the first) gives the
// candidate a share of new connections in proportion to its ready
// instances, drains as many old ones, and starts the next step; the last
// step commits. A failure after a share "restores": the old slots drained
// so far start again while the candidate keeps its share, then its share
// goes back to 0 and, once its queues are empty ("unsharing"), it drains.
//
// A canary reload (`reload --canary`, [canary]) starts every new instance;
// once they pass their checks it gives the candidate its canary share and
// answers the reload's clients. `baton promote`, or the end of its hold
// with every instance up and its http probe passing, commits it;
// `baton rollback`, an instance that exits, or 3 failed probes in a row
// take the share back as a failed rollout does.
//
// A request while none is in progress starts one (refused, with nothing
// changed, if the config does not load); while one is in progress it is
// queued, and the queued requests run as one reload once it ends (or are
// refused when baton stops). A candidate that cannot even be spawned is
// rolled back at once. After a commit, the new config's after_drained hook
// runs once no process of an older generation is left.
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "listen_socket.h"
#include "steering.h"
#include "supervisor.h"

namespace baton {

namespace {

/// After the switch, the old listeners' accept queues must stay empty this
/// long before their generation is told to drain: a handshake that began
/// before the switch ends on the old listener.
constexpr Millis kSwitchSettle{50};
/// How often they are looked at, and the longest wait for an old
/// generation that does not empty its queue.
constexpr Millis kSwitchPoll{10};
constexpr Millis kSwitchSettleMax{2'000};
/// How many replaced releases a rollback can go back to (status lists them).
constexpr size_t kPastReleases = 5;
/// A canary whose http probe fails this many times in a row is rolled back.
constexpr int kCanaryProbeFailures = 3;

}  // namespace

std::string check_name(const CheckCommand& c) {
  return c.name.empty() ? fmt::format("{}", fmt::join(c.command, " ")) : c.name;
}

using S = Supervisor;
/// A "-" cell: the event changes nothing in that state.
const S::ReloadAction S::kReloadNop = &S::reload_ignore;
// clang-format off
const S::ReloadAction S::kReloadTable[kReloadPhases][kReloadEvents] = {
//                hook passed      hook failed      ready              failed                smoke passed      smoke failed      min_ready / poll    released                stop                  restored              promote              rollback
/* pre_reload */ {&S::hook_passed, &S::hook_failed, kReloadNop,        kReloadNop,           kReloadNop,       kReloadNop,       kReloadNop,         kReloadNop,             &S::abort_pre_reload, kReloadNop,           kReloadNop,          kReloadNop},
/* starting   */ {kReloadNop,      kReloadNop,      &S::smoke_or_hold, &S::candidate_failed, kReloadNop,       kReloadNop,       kReloadNop,         kReloadNop,             &S::abort_reload,     kReloadNop,           kReloadNop,          kReloadNop},
/* smoking    */ {kReloadNop,      kReloadNop,      kReloadNop,        &S::candidate_failed, &S::smoke_passed, &S::smoke_failed, kReloadNop,         kReloadNop,             &S::abort_reload,     kReloadNop,           kReloadNop,          kReloadNop},
/* holding    */ {kReloadNop,      kReloadNop,      kReloadNop,        &S::candidate_failed, kReloadNop,       kReloadNop,       &S::hold_elapsed,   kReloadNop,             &S::abort_reload,     kReloadNop,           kReloadNop,          kReloadNop},
/* switching  */ {kReloadNop,      kReloadNop,      kReloadNop,        kReloadNop,           kReloadNop,       kReloadNop,       &S::settle_switch,  kReloadNop,             &S::finish_commit,    kReloadNop,           kReloadNop,          kReloadNop},
/* failed     */ {kReloadNop,      kReloadNop,      kReloadNop,        kReloadNop,           kReloadNop,       kReloadNop,       kReloadNop,         &S::roll_back_released, kReloadNop,           kReloadNop,           kReloadNop,          kReloadNop},
/* restoring  */ {kReloadNop,      kReloadNop,      kReloadNop,        kReloadNop,           kReloadNop,       kReloadNop,       kReloadNop,         kReloadNop,             &S::abort_reload,     &S::restore_progress, kReloadNop,          kReloadNop},
/* unsharing  */ {kReloadNop,      kReloadNop,      kReloadNop,        kReloadNop,           kReloadNop,       kReloadNop,       &S::settle_unshare, kReloadNop,             &S::abort_reload,     kReloadNop,           kReloadNop,          kReloadNop},
/* canary     */ {kReloadNop,      kReloadNop,      kReloadNop,        &S::candidate_failed, kReloadNop,       kReloadNop,       &S::canary_held,    kReloadNop,             &S::abort_reload,     kReloadNop,           &S::promote_canary,  &S::rollback_canary},
};
// clang-format on

const std::shared_ptr<Generation>& Supervisor::reload_gen() const {
  return reload_->gen;
}
bool Supervisor::candidates_ready() const {
  const Generation& gen = *reload_->gen;
  size_t started = reload_->record.pids.size();
  return started > 0 && gen.instances.size() == started &&
         gen.ready_count() == static_cast<int>(started);
}

void Supervisor::reload_event(ReloadEvent event, const std::string& reason) {
  if (!reload_) return;
  ReloadAction action = kReloadTable[static_cast<int>(reload_->phase)][static_cast<int>(event)];
  (this->*action)(reason);
}

void Supervisor::reload(ReloadRequest request) {
  if (!running()) {
    if (request.client) request.client->finished(ReloadOutcome::failure("baton is stopping"));
    return;
  }
  if (reload_ && reload_->phase == ReloadPhase::kCanary) {
    std::string why = fmt::format(
        "refused: generation {} is a canary ({} of new connections); `baton promote` or `baton "
        "rollback` it first",
        reload_->gen->number, format_share(reload_->share));
    spdlog::info("reload {}", why);
    if (request.client) request.client->finished(ReloadOutcome::failure(why));
    return;
  }
  if (reload_) {
    spdlog::info("reload requested while generation {} is starting: queued to run after it",
                 reload_->gen->number);
    if (request.client) {
      request.client->queued(fmt::format(
          "a reload is in progress (generation {} is starting); this one runs after it ends",
          reload_->gen->number));
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
    if (r.client) r.client->progress(message);
  }
  for (ReloadRequest& r : reload_->rollback_requests) {
    if (r.client) r.client->progress(message);
  }
}

void Supervisor::start_reload(std::vector<ReloadRequest> requests,
                              std::optional<GenerationPlan> same) {
  auto requested_at = os_.now();
  // Its listeners leave the reuseport groups as the new ones join.
  if (standby_) drop_standby("a reload started");
  Result<GenerationPlan> plan = same ? Result<GenerationPlan>(std::move(*same)) : loader_(nullptr);
  if (!plan) {
    std::string why = fmt::format("refused, nothing was changed: {}", plan.error().message);
    spdlog::error("reload {}", why);
    ReloadRecord record;
    record.requested_at = requested_at;
    record.result = "refused";
    record.error = why;
    keep_reload(record);
    counters_.reload_ended(record.result);
    for (ReloadRequest& r : requests) {
      if (r.client) r.client->finished(ReloadOutcome::failure(why, record));
    }
    return;
  }
  begin_reload(make_generation(std::move(*plan)), std::move(requests), requested_at);
  reload_->canary = reload_->gen->config->canary;
  for (const ReloadRequest& r : reload_->requests) {
    if (!r.canary) continue;
    Millis hold = reload_->canary ? reload_->canary->hold : Millis{0};
    reload_->canary = Config::Canary{*r.canary, hold};
  }
  broadcast(fmt::format("config ok; starting generation {}", reload_->gen->number));

  const std::optional<CheckCommand>& hook = reload_->gen->config->pre_reload;
  if (!hook) return start_candidate();
  reload_->phase = ReloadPhase::kPreReload;
  std::string name = check_name(*hook);
  broadcast(
      fmt::format("pre_reload {}: running (timeout {})", name, format_duration(hook->timeout)));
  reload_->command = os_.run(
      command_spec(*reload_->gen, *hook),
      [this, name](const std::string& line) { broadcast(fmt::format("pre_reload: {}", line)); },
      [this, name](CommandResult r) {
        std::string summary =
            fmt::format("pre_reload {}: {} in {}", name, r.outcome, format_duration(r.took));
        if (!r.passed) reload_->failure_output = r.output;
        reload_event(r.passed ? ReloadEvent::kHookPassed : ReloadEvent::kHookFailed, summary);
      });
  report_status();
}

void Supervisor::begin_reload(std::shared_ptr<Generation> gen, std::vector<ReloadRequest> requests,
                              Clock::time_point requested_at) {
  reload_ = std::make_unique<Reload>();
  reload_->requests = std::move(requests);
  reload_->gen = std::move(gen);
  ReloadRecord& record = reload_->record;
  record.requested_at = requested_at;
  record.generation = reload_->gen->number;
  record.replaced_generation = current_->number;
  record.replaced_pid = current_->instance() ? current_->instance()->pid() : 0;
  for (const Instance* i : current_->instances) record.replaced_pids.push_back(i->pid());
  cancel_restarts(*current_);  // the new generation takes over from a crash loop too
  listener_.reloading();
}

void Supervisor::hook_passed(const std::string& summary) {
  broadcast(summary);
  start_candidate();
}

void Supervisor::hook_failed(const std::string& summary) {
  reload_->failure = fmt::format("was not started: {}", summary);
  roll_back();
}

void Supervisor::abort_pre_reload(const std::string&) {
  reload_->command.reset();  // kills the hook
  reload_->failure = "was not started: reload aborted: baton is stopping";
  roll_back();
}

void Supervisor::start_candidate() {
  reload_->phase = ReloadPhase::kStarting;
  start_batch();
}

bool Supervisor::start_batch() {
  ReloadRecord& record = reload_->record;
  std::shared_ptr<Generation> gen = reload_->gen;
  const Config& config = *gen->config;
  size_t started = record.pids.size();
  size_t count = gen->slots.size() - started;
  if (config.strategy == Config::Strategy::kRolling && !reload_->canary) {
    count = std::min(count, static_cast<size_t>(config.max_surge));
  }
  for (size_t n = started + 1; n <= started + count; ++n) {
    InstanceSlot& slot = gen->slot(static_cast<int>(n));
    Status spawned = spawn_instance(gen, slot.number);
    if (!spawned) {
      std::string why = fmt::format("could not be started: {}", spawned.error().message);
      if (!has_instances(*gen)) {
        reload_->failure = why;
        roll_back();
      } else {
        reload_event(ReloadEvent::kCandidateFailed, why);  // rolled back once they are released
      }
      return false;
    }
    const Instance& inst = *gen->instances.back();
    if (record.pids.empty()) {
      record.exec_at = inst.started_at;
      record.pid = inst.pid();
    }
    record.pids.push_back(inst.pid());
    broadcast(gen->slots.size() > 1
                  ? fmt::format("generation {}: started pid {} (instance {} of {})",
                                record.generation, inst.pid(), slot.number, gen->slots.size())
                  : fmt::format("generation {}: started pid {}", record.generation, inst.pid()));
  }
  return true;
}

void Supervisor::kill_candidates(const std::string& reason) {
  // The first kill fails the reload, which kills the others.
  for (Instance* i : reload_->gen->instances) {
    if (i->state != InstanceState::kFailing) return kill_instance(*i, reason);
  }
}

void Supervisor::candidate_ended(const Instance& inst, const std::string& reason) {
  if (reload_->phase != ReloadPhase::kFailed && reload_->failed_pid == 0) {
    reload_->failed_pid = inst.pid();
  }
  reload_event(ReloadEvent::kCandidateFailed, reason);
}

void Supervisor::smoke_or_hold(const std::string& message) {
  broadcast(message);
  if (!candidates_ready()) return report_status();
  reload_->record.ready_at = os_.now();
  const Generation& gen = *reload_->gen;
  if (gen.slots.size() > 1) {
    broadcast(fmt::format("generation {}: {} of {} instances ready", gen.number, gen.ready_count(),
                          gen.slots.size()));
  }
  if (reload_->smoked || gen.config->smoke.empty()) return hold_or_commit({});
  reload_->phase = ReloadPhase::kSmoking;
  reload_->smoke_index = 0;
  run_smoke();
}

void Supervisor::run_smoke() {
  const std::vector<CheckCommand>& smoke = reload_->gen->config->smoke;
  if (reload_->smoke_index >= smoke.size()) {
    reload_->smoked = true;
    return hold_or_commit({});
  }
  const CheckCommand& check = smoke[reload_->smoke_index];
  std::string name = check_name(check);
  broadcast(fmt::format("smoke {}: running against generation {} (timeout {})", name,
                        reload_->gen->number, format_duration(check.timeout)));
  reload_->command = os_.run(
      command_spec(*reload_->gen, check),
      [this](const std::string& line) { broadcast(fmt::format("smoke: {}", line)); },
      [this, name](CommandResult r) {
        std::string outcome = fmt::format("{} in {}", r.outcome, format_duration(r.took));
        std::string summary = fmt::format("smoke {}: {}", name, outcome);
        if (!r.passed) reload_->failure_output = r.output;
        reload_->smoke_results.push_back({r.passed, outcome});
        reload_event(r.passed ? ReloadEvent::kSmokePassed : ReloadEvent::kSmokeFailed, summary);
      });
  report_status();
}

void Supervisor::smoke_passed(const std::string& summary) {
  broadcast(summary);
  reload_->smoke_index++;
  run_smoke();
}

void Supervisor::smoke_failed(const std::string& summary) {
  kill_candidates(fmt::format("failed a smoke check: {}", summary));
}

void Supervisor::hold_or_commit(const std::string&) {
  Millis hold = reload_->gen->config->min_ready;
  if (hold.count() == 0) return commit_reload();
  // The old generation keeps serving beside the new one for min_ready: if
  // the new one exits meanwhile, the reload rolls back and nothing was
  // taken from the old one.
  reload_->phase = ReloadPhase::kHolding;
  reload_->hold_from = os_.now();
  const Generation& gen = *reload_->gen;
  std::string who = gen.slots.size() > 1 ? fmt::format("{} of its {} instances are",
                                                       gen.ready_count(), gen.slots.size())
                                         : fmt::format("pid {} is", gen.instance()->pid());
  broadcast(fmt::format(
      "generation {}: {} ready; generation {} keeps serving for min_ready ({}) in case {} exits",
      gen.number, who, current_->number, format_duration(hold),
      gen.slots.size() > 1 ? "one" : "it"));
  arm_hold(hold);
  report_status();
}

void Supervisor::arm_hold(Millis wait) {
  hold_timer_->arm(wait);
}

void Supervisor::hold_elapsed(const std::string&) {
  // libuv's loop clock counts whole milliseconds, so the timer can fire up
  // to 1ms early; the promise is "stayed up for min_ready" as the status
  // report measures it, so wait out any remainder.
  auto left = reload_->gen->config->min_ready - (os_.now() - reload_->hold_from);
  if (left > Clock::duration::zero()) return arm_hold(std::chrono::ceil<Millis>(left));
  broadcast(fmt::format("generation {}: {} stayed up for min_ready ({})",
                        reload_->record.generation,
                        reload_->gen->slots.size() > 1
                            ? fmt::format("{} of its {} instances", reload_->gen->ready_count(),
                                          reload_->gen->slots.size())
                            : fmt::format("pid {}", reload_->record.pid),
                        format_duration(reload_->gen->config->min_ready)));
  commit_reload();
}

void Supervisor::candidate_failed(const std::string& reason) {
  if (!reload_->served.empty()) {
    reload_->failure = reason;
    return restore_rollout();
  }
  reload_->failure = reason;
  leave_step(ReloadPhase::kFailed);
  // The rest of its generation goes with it (none of it has served).
  std::vector<Instance*> others = reload_->gen->instances;
  for (Instance* i : others) {
    if (i->state == InstanceState::kFailing) continue;
    kill_instance(*i, fmt::format("is killed: generation {} failed", reload_->gen->number));
  }
}

void Supervisor::abort_reload(const std::string&) {
  // Stop drains every instance, the candidate's too.
  reload_->failure = "reload aborted: baton is stopping";
  leave_step(ReloadPhase::kFailed);
}

void Supervisor::leave_step(ReloadPhase next) {
  reload_->phase = next;
  reload_->command.reset();
  hold_timer_->cancel();
  stop_watch();
}

void Supervisor::roll_back_released(const std::string&) {
  roll_back();
}

void Supervisor::commit_reload() {
  if (reload_->canary && !reload_->promoted) return start_canary();
  const Generation& gen = *reload_->gen;
  if (!reload_->to_standby && gen.config->strategy == Config::Strategy::kRolling &&
      reload_->record.pids.size() < gen.slots.size()) {
    return advance_rollout();
  }
  std::shared_ptr<Generation> old = current_;
  if (Status s = os_.switch_to(reload_->gen->sockets); !s) {
    // Back to the old listeners for the addresses that did switch.
    if (Status back = os_.switch_to(old->sockets); !back) {
      spdlog::error("reload: cannot switch back to generation {}: {}", old->number,
                    back.error().message);
    }
    return kill_candidates(fmt::format("could not be switched to: {}", s.error().message));
  }
  current_ = reload_->gen;
  reload_->replaced = old;
  listener_.switched(current_->sockets);
  std::optional<int> queued = os_.queued(old->sockets);
  if (!queued) return finish_commit({});
  if (old->instances.empty()) {
    // Nobody is left to accept what waits on the old listeners (the old
    // generation was down, restarting): those connections are reset when
    // the listeners close, unless the kernel migrates them.
    if (*queued > 0) {
      spdlog::warn(
          "reload: {} connection(s) queued on generation {}'s listeners while it was down are "
          "reset when they close (net.ipv4.tcp_migrate_req=1 moves them to the new listeners)",
          *queued, old->number);
    }
    return finish_commit({});
  }
  // The old instances accept on their own listeners what was queued there
  // before the switch; they are told to drain once that is done.
  broadcast(fmt::format(
      "switched: new connections go to generation {}; generation {} accepts what was queued "
      "on its listeners",
      current_->number, old->number));
  reload_->phase = ReloadPhase::kSwitching;
  switched_at_ = last_queued_at_ = os_.now();
  arm_hold(kSwitchPoll);
  report_status();
}

namespace {

std::string percent(uint32_t share) {
  return fmt::format("{:.4g}%", share * 100.0 / kShareScale);
}

}  // namespace

void Supervisor::promote(ReloadRequest request) {
  if (!reload_ || reload_->phase != ReloadPhase::kCanary) {
    std::string why = reload_
                          ? fmt::format(
                                "nothing to promote: generation {} is no canary (its reload is at "
                                "{})",
                                reload_->gen->number, snapshot().reload_step)
                          : "nothing to promote: no canary is in progress";
    if (request.client) request.client->finished(ReloadOutcome::failure(why));
    return;
  }
  reload_->requests.push_back(std::move(request));
  reload_event(ReloadEvent::kPromote);
}

void Supervisor::rollback(ReloadRequest request) {
  if (!running()) {
    if (request.client) request.client->finished(ReloadOutcome::failure("baton is stopping"));
    return;
  }
  counters_.rollbacks[!reload_ ? (standby_ ? "standby" : "release") : "canary"]++;
  if (!reload_ && standby_) return roll_back_to_standby(std::move(request));
  if (!reload_) return roll_back_release(std::move(request));
  if (reload_->phase != ReloadPhase::kCanary) {
    std::string why = fmt::format(
        "nothing to roll back yet: generation {} is being reloaded (at {}); a failure rolls it "
        "back by itself",
        reload_->gen->number, snapshot().reload_step);
    if (request.client) request.client->finished(ReloadOutcome::failure(why));
    return;
  }
  reload_->rollback_requests.push_back(std::move(request));
  reload_event(ReloadEvent::kRollback);
}

void Supervisor::roll_back_release(ReloadRequest request) {
  if (past_releases_.empty()) {
    if (request.client) {
      request.client->finished(ReloadOutcome::failure(
          "nothing to roll back: no reload has replaced a generation since baton started"));
    }
    return;
  }
  PastRelease past = past_releases_.front();
  if (!past.release.executable.empty() && access(past.release.executable.c_str(), X_OK) != 0) {
    std::string why = fmt::format(
        "refused, nothing was changed: generation {}'s release is gone: {} cannot be executed",
        past.generation, past.release.executable);
    if (request.client) request.client->finished(ReloadOutcome::failure(why));
    return;
  }
  Result<GenerationPlan> plan = loader_(past.config);
  if (!plan) {
    std::string why = fmt::format("refused, nothing was changed: {}", plan.error().message);
    if (request.client) request.client->finished(ReloadOutcome::failure(why));
    return;
  }
  plan->release = past.release;
  std::string what = fmt::format("rollback: generation {}'s release: {} in {}", past.generation,
                                 past.release.executable, past.release.working_directory);
  spdlog::info("{}", what);
  if (request.client) request.client->progress(what);
  std::vector<ReloadRequest> requests;
  requests.push_back(std::move(request));
  start_reload(std::move(requests), std::move(*plan));
}

std::string Supervisor::standby_obstacle(const Generation& gen) const {
  for (const SharedSocket& s : gen.sockets) {
    const std::string& name = s->spec().name;
    if (!s->shared_reason().empty()) {
      return fmt::format("socket '{}' is shared by the generations ({})", name, s->shared_reason());
    }
    if (s->spec().kind == SocketKind::kUnix) {
      return fmt::format("socket '{}' is a unix socket: its path has one owner at a time", name);
    }
    if (!s->group() || !s->group()->contains(s->fd())) {
      return fmt::format("socket '{}': its listener left its group", name);
    }
  }
  return {};
}

std::shared_ptr<Generation> Supervisor::take_standby() {
  std::shared_ptr<Generation> gen = std::move(standby_);
  standby_.reset();
  standby_timer_->cancel();
  return gen;
}

void Supervisor::drop_standby(const std::string& why) {
  std::shared_ptr<Generation> gen = take_standby();
  std::vector<Instance*> instances = gen->instances;
  spdlog::info("standby: generation {} drains: {}", gen->number, why);
  for (Instance* i : instances) dispatch(*i, InstanceEvent::kDrain);
  report_status();
}

void Supervisor::roll_back_to_standby(ReloadRequest request) {
  if (standby_->ready_count() == 0) {
    drop_standby("none of its instances is left");  // nothing would accept on its listeners
    return roll_back_release(std::move(request));
  }
  std::shared_ptr<Generation> gen = take_standby();
  std::vector<ReloadRequest> requests;
  requests.push_back(std::move(request));
  begin_reload(gen, std::move(requests), os_.now());
  reload_->to_standby = true;
  reload_->phase = ReloadPhase::kHolding;  // its instances are ready: straight to the commit
  ReloadRecord& record = reload_->record;
  record.exec_at = record.ready_at = record.requested_at;
  for (const Instance* i : gen->instances) record.pids.push_back(i->pid());
  record.pid = record.pids.empty() ? 0 : record.pids.front();
  // What waited for the rolled-back generation's old processes to be gone
  // will not run: those processes serve again.
  for (auto it = after_drained_.begin(); it != after_drained_.end();) {
    if (it->generation <= gen->number || (after_drained_running_ && it == after_drained_.begin())) {
      ++it;
      continue;
    }
    for (ReloadRequest& w : it->waiters) {
      w.client->finished(ReloadOutcome::failure(
          fmt::format("the reload to generation {} was rolled back to the standby before its "
                      "after_drained hook ran",
                      it->generation),
          last_reload_));
    }
    it = after_drained_.erase(it);
  }
  broadcast(
      fmt::format("rollback: generation {} (the standby, {} instance(s) ready) takes over again",
                  gen->number, gen->ready_count()));
  commit_reload();
}

void Supervisor::start_canary() {
  Reload& r = *reload_;
  Generation& gen = *r.gen;
  if (Status s = os_.share(gen.sockets, r.canary->share); !s) {
    return kill_candidates(
        fmt::format("could not be given its canary share: {}", s.error().message));
  }
  r.phase = ReloadPhase::kCanary;
  r.share = r.canary->share;
  r.canary_since = os_.now();
  for (const Instance* i : gen.instances) r.served.push_back(i->pid());
  std::string next =
      r.canary->hold.count() > 0
          ? fmt::format(
                "it is promoted after {} if its instances stay up and its probes pass; "
                "`baton promote` or `baton rollback` decide before",
                format_duration(r.canary->hold))
          : "`baton promote` switches every new connection to it, `baton rollback` takes its "
            "share back";
  std::string message = fmt::format("canary: generation {} gets {} of new connections; {}",
                                    gen.number, format_share(r.share), next);
  spdlog::info("reload: {}", message);
  for (ReloadRequest& req : r.requests) {
    if (req.client) req.client->finished(ReloadOutcome::canary(r.record, message));
  }
  r.requests.clear();
  if (r.canary->hold.count() > 0) arm_hold(r.canary->hold);
  watch_canary();
  report_status();
}

void Supervisor::promote_canary(const std::string&) {
  hold_timer_->cancel();
  stop_watch();
  reload_->promoted = true;
  broadcast(fmt::format("promote: generation {} takes every new connection", reload_->gen->number));
  commit_reload();
}

void Supervisor::canary_held(const std::string&) {
  auto left = reload_->canary->hold - (os_.now() - reload_->canary_since);
  if (left > Clock::duration::zero()) return arm_hold(std::chrono::ceil<Millis>(left));
  broadcast(fmt::format("canary: generation {} stayed up for its hold ({}); promoting it",
                        reload_->gen->number, format_duration(reload_->canary->hold)));
  promote_canary({});
}

void Supervisor::rollback_canary(const std::string&) {
  hold_timer_->cancel();
  reload_->failure = "was rolled back during its canary (baton rollback)";
  restore_rollout();
}

void Supervisor::watch_canary() {
  Reload& r = *reload_;
  const ReadyChecks& ready = r.gen->config->ready;
  const SharedSocket* socket = probed_socket(*r.gen);
  if (!ready.http || !socket) return;
  if (!r.watch_timer) {
    r.watch_timer = os_.timer([this] {
      if (!reload_ || reload_->phase != ReloadPhase::kCanary) return;
      const ReadyChecks& checks = reload_->gen->config->ready;
      ProbeSpec spec;
      spec.kind = ProbeSpec::Kind::kHttp;
      spec.listener = *probed_socket(*reload_->gen);
      spec.http = *checks.http;
      spec.timeout = checks.timeout;
      reload_->watch_attempt = os_.probe(spec, [this](ProbeResult result) {
        Reload& w = *reload_;
        w.watch_last = result.summary;
        w.watch_failures = result.passed ? 0 : w.watch_failures + 1;
        if (w.watch_failures >= kCanaryProbeFailures) {
          return reload_event(ReloadEvent::kCandidateFailed,
                              fmt::format("failed its {} {} times in a row during its canary: {}",
                                          probe_label("http", w.gen->config->ready),
                                          kCanaryProbeFailures, result.summary));
        }
        w.watch_timer->arm(w.gen->config->ready.interval);
      });
    });
  }
  r.watch_timer->arm(ready.interval);
}

void Supervisor::stop_watch() {
  reload_->watch_attempt.reset();
  if (reload_->watch_timer) reload_->watch_timer->cancel();
}

void Supervisor::advance_rollout() {
  Generation& gen = *reload_->gen;
  int wanted = static_cast<int>(gen.slots.size());
  int batch = static_cast<int>(reload_->record.pids.size() - reload_->served.size());
  int ready_new = gen.ready_count();
  std::vector<Instance*> ready_old;
  for (Instance* i : current_->instances) {
    if (i->state == InstanceState::kReady) ready_old.push_back(i);
  }
  std::sort(ready_old.begin(), ready_old.end(),
            [](const Instance* a, const Instance* b) { return a->slot < b->slot; });
  // As many old instances drain as this step added, never leaving fewer
  // than `instances` ready in all.
  int old_ready = static_cast<int>(ready_old.size());
  int drain = std::clamp(std::min(batch, ready_new + old_ready - wanted), 0, old_ready);
  int old_left = old_ready - drain;
  // New connections split in proportion to the ready instances.
  uint32_t share = old_left == 0 ? kShareScale
                                 : static_cast<uint32_t>(static_cast<int64_t>(ready_new) *
                                                         kShareScale / (ready_new + old_left));
  if (Status s = os_.share(gen.sockets, share); !s) {
    return reload_event(
        ReloadEvent::kCandidateFailed,
        fmt::format("could not be given a share of new connections: {}", s.error().message));
  }
  reload_->share = share;
  for (const Instance* i : gen.instances) {
    if (std::find(reload_->served.begin(), reload_->served.end(), i->pid()) ==
        reload_->served.end()) {
      reload_->served.push_back(i->pid());
    }
  }
  broadcast(fmt::format(
      "rolling: generation {} has {} of {} instances ready and gets {} of new connections",
      gen.number, ready_new, wanted, percent(share)));
  for (int k = 0; k < drain; ++k) {
    Instance& o = *ready_old[static_cast<size_t>(k)];
    reload_->retired_slots.push_back(o.slot);
    const Config& config = *o.gen->config;
    broadcast(fmt::format("generation {}: pid {} told to drain ({}, drain_timeout {})",
                          o.generation(), o.pid(), signal_name(config.drain_signal),
                          format_duration(config.drain_timeout)));
    dispatch(o, InstanceEvent::kDrain);
  }
  reload_->phase = ReloadPhase::kStarting;
  if (start_batch()) report_status();
}

void Supervisor::restore_rollout() {
  Reload& r = *reload_;
  leave_step(ReloadPhase::kRestoring);
  // The new instances that never had a share go at once.
  std::vector<Instance*> fresh;
  for (Instance* i : r.gen->instances) {
    bool served = std::find(r.served.begin(), r.served.end(), i->pid()) != r.served.end();
    if (!served && i->state != InstanceState::kFailing) fresh.push_back(i);
  }
  for (Instance* i : fresh) {
    kill_instance(*i, fmt::format("is killed: generation {} failed", r.gen->number));
  }
  broadcast(fmt::format(
      "rolling back: generation {} starts {} instance(s) again; generation {} keeps its share "
      "({}) until they are ready",
      current_->number, r.retired_slots.size(), r.gen->number, percent(r.share)));
  std::vector<int> slots = std::move(r.retired_slots);
  r.retired_slots.clear();
  for (int slot : slots) {
    if (current_->in_slot(slot)) continue;
    if (Status s = spawn_instance(current_, slot); !s) {
      broadcast(fmt::format("generation {} instance {} could not be started again: {}",
                            current_->number, slot, s.error().message));
    }
  }
  restore_progress({});
}

void Supervisor::restore_progress(const std::string&) {
  for (const Instance* i : current_->instances) {
    if (i->state == InstanceState::kStarting) return report_status();
  }
  restore_done();
}

void Supervisor::restore_done() {
  Reload& r = *reload_;
  if (Status s = os_.share(r.gen->sockets, 0); !s) {
    spdlog::error("reload: cannot take generation {}'s share of new connections back: {}",
                  r.gen->number, s.error().message);
  }
  r.share = 0;
  broadcast(fmt::format(
      "generation {} has {} of {} instances ready and gets every new connection again; "
      "generation {} accepts what was queued on its listeners, then drains",
      current_->number, current_->ready_count(), current_->slots.size(), r.gen->number));
  r.phase = ReloadPhase::kUnsharing;
  switched_at_ = last_queued_at_ = os_.now();
  arm_hold(kSwitchPoll);
  report_status();
}

std::optional<bool> Supervisor::queues_settled(const std::vector<SharedSocket>& sockets,
                                               int& queued) {
  Clock::time_point now = os_.now();
  queued = os_.queued(sockets).value_or(0);
  if (queued > 0) last_queued_at_ = now;
  if (now - last_queued_at_ >= kSwitchSettle) return true;
  if (now - switched_at_ >= kSwitchSettleMax) return false;
  arm_hold(kSwitchPoll);
  return std::nullopt;
}

void Supervisor::settle_unshare(const std::string&) {
  int queued = 0;
  if (!queues_settled(reload_->gen->sockets, queued)) return;
  reload_->phase = ReloadPhase::kFailed;
  std::vector<Instance*> served = reload_->gen->instances;
  for (Instance* i : served) dispatch(*i, InstanceEvent::kDrain);
  if (!has_instances(*reload_->gen)) return roll_back();
  report_status();
}

void Supervisor::settle_switch(const std::string&) {
  int queued = 0;
  std::optional<bool> settled = queues_settled(reload_->replaced->sockets, queued);
  if (!settled) return;
  if (!*settled) {
    spdlog::warn(
        "reload: {} connection(s) still queued on generation {}'s listeners {} after the switch; "
        "telling it to drain anyway (they are reset when its listeners close, unless "
        "net.ipv4.tcp_migrate_req=1 moves them)",
        queued, reload_->replaced->number, format_duration(kSwitchSettleMax));
  }
  finish_commit({});
}

void Supervisor::finish_commit(const std::string&) {
  ReloadRecord& record = reload_->record;
  hold_timer_->cancel();
  std::vector<Instance*> replaced = reload_->replaced->instances;
  // The replaced generation stays up, steered away from, for the standby
  // window, when every one of its sockets can be switched back to.
  Millis window = current_->config->standby;
  bool keep = false;
  if (window.count() > 0 && !reload_->to_standby && !replaced.empty()) {
    std::string obstacle = standby_obstacle(*reload_->replaced);
    keep = obstacle.empty();
    if (!keep) {
      broadcast(fmt::format("generation {} is not kept as a standby: {}; it drains",
                            record.replaced_generation, obstacle));
    }
  }
  if (keep) {
    standby_ = reload_->replaced;
    standby_until_ = os_.now() + window;
    standby_timer_->arm(window);
    record.drain_result = fmt::format("kept as a warm standby for {}", format_duration(window));
    broadcast(fmt::format(
        "generation {} stays up as a warm standby for {} (no new connection reaches it); `baton "
        "rollback` switches back to it at once",
        record.replaced_generation, format_duration(window)));
    replaced.clear();
  }
  for (Instance* o : replaced) {
    dispatch(*o, InstanceEvent::kDrain);
    record.drain_sent_at = os_.now();
    const Config& config = *o->gen->config;
    broadcast(fmt::format("generation {}: pid {} told to drain ({}, drain_timeout {})",
                          record.replaced_generation, o->pid(), signal_name(config.drain_signal),
                          format_duration(config.drain_timeout)));
  }
  record.result = "ok";
  ++reloads_;
  keep_reload(record);
  count_committed(record);
  const Generation& old = *reload_->replaced;
  past_releases_.insert(past_releases_.begin(), PastRelease{old.number, old.config, old.release});
  if (past_releases_.size() > kPastReleases) past_releases_.resize(kPastReleases);
  spdlog::info(
      "reload to generation {} done: request to exec {}ms, exec to ready {}ms, ready to drain "
      "signal {}ms",
      record.generation, between_ms(record.requested_at, record.exec_at),
      between_ms(record.exec_at, record.ready_at),
      between_ms(record.ready_at, record.drain_sent_at));
  const std::optional<CheckCommand>& hook = current_->config->after_drained;
  AfterDrained after{current_->number, current_->config, {}};
  std::string message;
  if (reload_->to_standby) {
    message = fmt::format(
        "rolled back: generation {} (the standby) takes every new connection, no process was "
        "started; generation {} drains",
        record.generation, record.replaced_generation);
  }
  for (ReloadRequest& r : reload_->requests) {
    if (!r.client) continue;
    if (!message.empty() && !(r.wait_drained && !replaced.empty())) {
      r.client->finished(ReloadOutcome::canary(record, message));
    } else if (r.wait_drained && hook) {
      r.client->draining(record);
      after.waiters.push_back(std::move(r));
    } else if (r.wait_drained && !replaced.empty()) {
      r.client->draining(record);
      drain_waiters_.emplace_back(record.replaced_generation, std::move(r));
    } else {
      r.client->finished(ReloadOutcome::success(record));
    }
  }
  if (hook) after_drained_.push_back(std::move(after));
  end_reload();
  restart_empty_slots();  // a new instance that exited while switching
  run_after_drained();
}

void Supervisor::run_after_drained() {
  if (after_drained_running_ || after_drained_.empty() || !running()) return;
  AfterDrained& next = after_drained_.front();
  for (const auto& i : instances_) {
    if (i->gen->number < next.generation) return;  // an older process is still there
  }
  const CheckCommand& hook = *next.config->after_drained;
  std::string name = check_name(hook);
  auto tell = [this](const std::string& message) {
    spdlog::info("after_drained: {}", message);
    for (ReloadRequest& r : after_drained_.front().waiters) r.client->progress(message);
  };
  tell(fmt::format("{}: running; no process of a generation before {} is left (timeout {})", name,
                   next.generation, format_duration(hook.timeout)));
  Generation gen;
  gen.number = next.generation;
  gen.config = next.config;
  if (current_->number == next.generation) gen.sockets = current_->sockets;
  after_drained_running_ = os_.run(command_spec(gen, hook), tell, [this, name](CommandResult r) {
    std::string summary =
        fmt::format("after_drained {}: {} in {}", name, r.outcome, format_duration(r.took));
    AfterDrained done = std::move(after_drained_.front());
    after_drained_.erase(after_drained_.begin());
    after_drained_running_.reset();
    if (r.passed) {
      spdlog::info("{}", summary);
    } else {
      spdlog::error("{}", summary);
    }
    for (ReloadRequest& w : done.waiters) {
      if (r.passed && last_reload_) {
        w.client->finished(ReloadOutcome::success(*last_reload_));
      } else {
        w.client->finished(ReloadOutcome::failure(
            fmt::format("the reload to generation {} is done, but {}", done.generation, summary),
            last_reload_, r.output));
      }
    }
    run_after_drained();
    check_stopped();
  });
}

void Supervisor::count_committed(const ReloadRecord& record) {
  counters_.reload_ended(record.result);
  if (auto s = seconds_between(record.requested_at, record.exec_at))
    counters_.request_to_exec.observe(*s);
  if (auto s = seconds_between(record.exec_at, record.ready_at))
    counters_.exec_to_ready.observe(*s);
  if (auto s = seconds_between(record.ready_at, record.drain_sent_at)) {
    counters_.ready_to_drain.observe(*s);
  }
}

void Supervisor::roll_back() {
  Reload& r = *reload_;
  r.record.result = running() ? "rolled back" : "aborted";
  bool asked = !r.rollback_requests.empty() && r.failed_pid == 0;
  pid_t pid = asked ? 0 : r.failed_pid ? r.failed_pid : r.record.pid;
  r.record.error = fmt::format("generation {}{} {}", r.record.generation,
                               pid ? fmt::format(" pid {}", pid) : "", r.failure);
  std::string serving = serving_after_rollback();
  spdlog::error("reload rolled back: {}; {}", r.record.error, serving);
  std::vector<std::string> tail = r.failure_output.empty() ? r.failed_stderr : r.failure_output;
  keep_reload(r.record);
  counters_.reload_ended(r.record.result);
  for (ReloadRequest& req : r.requests) {
    if (!req.client) continue;
    req.client->finished(
        ReloadOutcome::failure(fmt::format("{}; {}", r.record.error, serving), r.record, tail));
  }
  for (ReloadRequest& req : r.rollback_requests) {
    if (!req.client) continue;
    if (asked) {
      req.client->finished(ReloadOutcome::canary(
          r.record,
          fmt::format("rolled back: generation {} is gone; {}", r.record.generation, serving)));
    } else {
      req.client->finished(
          ReloadOutcome::failure(fmt::format("{}; {}", r.record.error, serving), r.record, tail));
    }
  }
  end_reload();
  restart_empty_slots();
}

std::string Supervisor::serving_after_rollback() const {
  if (!running()) return fmt::format("generation {} is draining", current_->number);
  if (current_->slots.size() > 1 && !current_->instances.empty()) {
    return fmt::format("generation {} keeps serving ({} of {} instances ready)", current_->number,
                       current_->ready_count(), current_->slots.size());
  }
  if (const Instance* i = current_->instance()) {
    return fmt::format("generation {} (pid {}) keeps serving", current_->number, i->pid());
  }
  return fmt::format("generation {} keeps its place (no process is running; it restarts)",
                     current_->number);
}

void Supervisor::end_reload() {
  reload_.reset();
  hold_timer_->cancel();
  // Ends RELOADING=1 whatever the outcome: the service serves either way.
  bool serving = current_->instance() && current_->instance()->state == InstanceState::kReady;
  if (running() && (state_ == State::kServing || serving)) tell_serving();
  report_status();
  if (!running() || queued_.empty()) return;
  std::vector<ReloadRequest> next = std::move(queued_);
  queued_.clear();
  start_reload(std::move(next));
}

void Supervisor::keep_reload(const ReloadRecord& record) {
  if (last_reload_) {
    earlier_reloads_.push_front(std::move(*last_reload_));
    if (earlier_reloads_.size() >= kReloadHistory) earlier_reloads_.pop_back();
  }
  last_reload_ = record;
}

void Supervisor::note_drained(const Instance& inst, const std::string& how) {
  spdlog::info("generation {}: pid {} {}", inst.generation(), inst.pid(), how);
  // The reload that replaced the instance's generation: the last one, or
  // (another began while it drained) one before.
  ReloadRecord* record = nullptr;
  auto replaced_it = [&](const ReloadRecord& r) {
    return r.replaced_generation == inst.generation() &&
           std::find(r.replaced_pids.begin(), r.replaced_pids.end(), inst.pid()) !=
               r.replaced_pids.end();
  };
  if (last_reload_ && replaced_it(*last_reload_)) {
    record = &*last_reload_;
  } else {
    for (ReloadRecord& r : earlier_reloads_) {
      if (replaced_it(r)) {
        record = &r;
        break;
      }
    }
  }
  if (!record) return;
  const auto& replaced = record->replaced_pids;
  // Drained once the last of them is.
  for (const auto& i : instances_) {
    if (i.get() != &inst && i->state != InstanceState::kExited &&
        std::find(replaced.begin(), replaced.end(), i->pid()) != replaced.end()) {
      return;
    }
  }
  record->drained_at = os_.now();
  record->drain_result = how;
  if (auto s = seconds_between(record->drain_sent_at, record->drained_at)) {
    counters_.drain.observe(*s);
  }
}

void Supervisor::answer_drain_waiters() {
  for (auto it = drain_waiters_.begin(); it != drain_waiters_.end();) {
    bool left = std::any_of(instances_.begin(), instances_.end(),
                            [&](const auto& i) { return i->generation() == it->first; });
    if (left) {
      ++it;
      continue;
    }
    if (it->second.client && last_reload_) {
      it->second.client->finished(ReloadOutcome::success(*last_reload_));
    }
    it = drain_waiters_.erase(it);
  }
}

}  // namespace baton

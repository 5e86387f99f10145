// The reload transaction. A reload starts a candidate generation beside the
// serving one; kReloadTable decides what each event does to it:
//
//   phase     | candidate   | candidate failed | min_ready | candidate     | stop
//             | READY=1     | (killed, exited) | elapsed   | released      |
//   ----------+-------------+------------------+-----------+---------------+-------------
//   starting  | hold, or    | -> failed        | -         | -             | -> failed
//             |   commit    |                  |           |               |   ("aborted")
//   holding   | -           | -> failed        | commit    | -             | -> failed
//   failed    | -           | -                | -         | roll back     | -
//
// "commit" makes the candidate's generation current and drains the old one;
// "roll back" leaves the old one as it was. Either ends the transaction and
// answers its clients. A request while none is in progress starts one
// (refused, with nothing changed, if the config does not load); while one
// is in progress it is queued, and the queued requests run as one reload
// once it ends (or are refused when baton stops). A candidate that cannot
// even be spawned is rolled back at once.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "supervisor.h"

namespace baton {

using S = Supervisor;
/// A "-" cell: the event changes nothing in that state.
const S::ReloadAction S::kReloadNop = &S::reload_ignore;
// clang-format off
const S::ReloadAction S::kReloadTable[3][5] = {
//              READY=1             failed                min_ready elapsed  released                stop
/* starting */ {&S::hold_or_commit, &S::candidate_failed, kReloadNop,        kReloadNop,             &S::abort_reload},
/* holding  */ {kReloadNop,         &S::candidate_failed, &S::hold_elapsed,  kReloadNop,             &S::abort_reload},
/* failed   */ {kReloadNop,         kReloadNop,           kReloadNop,        &S::roll_back_released, kReloadNop},
};
// clang-format on

const std::shared_ptr<Generation>& Supervisor::reload_gen() const {
  return reload_->gen;
}
const Instance* Supervisor::reload_candidate() const {
  return reload_->inst;
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
}

void Supervisor::start_reload(std::vector<ReloadRequest> requests,
                              std::optional<GenerationPlan> same) {
  auto requested_at = os_.now();
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
      if (r.client) r.client->finished(ReloadOutcome::failure(why, record));
    }
    return;
  }
  reload_ = std::make_unique<Reload>();
  reload_->requests = std::move(requests);
  reload_->gen = std::make_shared<Generation>();
  reload_->gen->number = next_generation_++;
  reload_->gen->config = std::move(plan->config);
  reload_->gen->protocol = protocol_for(*reload_->gen->config);
  reload_->gen->sockets = std::move(plan->sockets);
  ReloadRecord& record = reload_->record;
  record.requested_at = requested_at;
  record.generation = reload_->gen->number;
  record.replaced_generation = current_->number;
  record.replaced_pid = current_->instance() ? current_->instance()->pid() : 0;
  restart_timer_->cancel();  // the new generation takes over from a crash loop too
  current_->next_start_at = {};
  listener_.reloading();
  broadcast(fmt::format("config ok; starting generation {}", reload_->gen->number));

  Status spawned = spawn_instance(reload_->gen);
  if (!spawned) {
    reload_->failure = fmt::format("could not be started: {}", spawned.error().message);
    return roll_back(nullptr);
  }
  reload_->inst = reload_->gen->instance();
  record.exec_at = reload_->inst->started_at;
  record.pid = reload_->inst->pid();
  broadcast(fmt::format("generation {}: started pid {}", record.generation, record.pid));
}

void Supervisor::hold_or_commit(const std::string&) {
  Instance& inst = *reload_->inst;
  Millis hold = reload_->gen->config->min_ready;
  if (hold.count() == 0) return commit_reload();
  // The old generation keeps serving beside the new one for min_ready: if
  // the new one exits meanwhile, the reload rolls back and nothing was
  // taken from the old one.
  reload_->phase = ReloadPhase::kHolding;
  reload_->record.ready_at = inst.ready_at;
  broadcast(fmt::format(
      "generation {}: pid {} ready after {}; generation {} keeps serving for min_ready ({}) in "
      "case it exits",
      inst.generation(), inst.pid(),
      format_duration(Millis(between_ms(inst.started_at, inst.ready_at))), current_->number,
      format_duration(hold)));
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
  auto left = reload_->gen->config->min_ready - (os_.now() - reload_->record.ready_at);
  if (left > Clock::duration::zero()) return arm_hold(std::chrono::ceil<Millis>(left));
  commit_reload();
}

void Supervisor::candidate_failed(const std::string& reason) {
  reload_->phase = ReloadPhase::kFailed;
  reload_->failure = reason;
  hold_timer_->cancel();
}

void Supervisor::abort_reload(const std::string&) {
  candidate_failed("reload aborted: baton is stopping");
}

void Supervisor::roll_back_released(const std::string&) {
  roll_back(reload_->inst);
}

void Supervisor::commit_reload() {
  ReloadRecord& record = reload_->record;
  std::vector<Instance*> old = current_->instances;
  current_ = reload_->gen;
  if (record.ready_at == Clock::time_point{}) {
    record.ready_at = os_.now();
    broadcast(fmt::format("generation {}: pid {} ready after {}", record.generation, record.pid,
                          format_duration(Millis(between_ms(record.exec_at, record.ready_at)))));
  } else {
    broadcast(fmt::format("generation {}: pid {} stayed up for min_ready ({})", record.generation,
                          record.pid, format_duration(current_->config->min_ready)));
  }
  for (Instance* o : old) {
    dispatch(*o, InstanceEvent::kDrain);
    record.drain_sent_at = os_.now();
    const Config& config = *o->gen->config;
    broadcast(fmt::format("generation {}: pid {} told to drain ({}, drain_timeout {})",
                          record.replaced_generation, o->pid(), signal_name(config.drain_signal),
                          format_duration(config.drain_timeout)));
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
    if (!r.client) continue;
    if (r.wait_drained && !old.empty()) {
      r.client->draining(record);
      drain_waiters_.emplace_back(old.front(), std::move(r));
    } else {
      r.client->finished(ReloadOutcome::success(record));
    }
  }
  end_reload();
}

void Supervisor::roll_back(const Instance* failed) {
  Reload& r = *reload_;
  r.record.result = running() ? "rolled back" : "aborted";
  r.record.error = fmt::format("generation {}{} {}", r.record.generation,
                               r.record.pid ? fmt::format(" pid {}", r.record.pid) : "", r.failure);
  std::string serving = serving_after_rollback();
  spdlog::error("reload rolled back: {}; {}", r.record.error, serving);
  std::vector<std::string> tail;
  if (failed)
    tail.assign(failed->process->last_stderr().begin(), failed->process->last_stderr().end());
  last_reload_ = r.record;
  for (ReloadRequest& req : r.requests) {
    if (!req.client) continue;
    req.client->finished(
        ReloadOutcome::failure(fmt::format("{}; {}", r.record.error, serving), r.record, tail));
  }
  end_reload();
  if (running() && !current_->instance()) schedule_restart(nullptr);
}

std::string Supervisor::serving_after_rollback() const {
  if (!running()) return fmt::format("generation {} is draining", current_->number);
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

void Supervisor::note_drained(const Instance& inst, const std::string& how) {
  spdlog::info("generation {}: pid {} {}", inst.generation(), inst.pid(), how);
  if (!last_reload_ || last_reload_->replaced_pid != inst.pid()) return;
  last_reload_->drained_at = os_.now();
  last_reload_->drain_result = how;
}

void Supervisor::answer_drain_waiters(const Instance& inst) {
  for (auto it = drain_waiters_.begin(); it != drain_waiters_.end();) {
    if (it->first != &inst) {
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

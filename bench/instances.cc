// Mode "instances"'s measurements (see instances.h).
#include "instances.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <fmt/format.h>

#include "support/loopback.h"

namespace bench {
namespace {

using namespace std::chrono_literals;

constexpr int kInstances = 4;
constexpr int kMaxSurge = 1;
constexpr const char* kStandbyWindow = "1m";
constexpr int kMinRollbacks = 5;
/// Bounds of one rollback: until the first response from the standby, and
/// until `baton rollback` exits.
constexpr Millis kFirstResponseTimeout = 30s;
constexpr Millis kRollbackTimeout = 90s;
/// Failure examples kept per rollback.
constexpr size_t kMaxExamples = 3;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// ---- 1. Rolling reloads ------------------------------------------------------------

/// How many of `reloads`, spread evenly over `rounds` slices, fall in `slice`.
int reloads_in_slice(int reloads, int rounds, int slice) {
  return (slice + 1) * reloads / rounds - slice * reloads / rounds;
}

/// The measured side's slice hook: its share of the reloads, evenly spaced
/// through the slice, each waited until the last old instance exited.
SliceHook rolling_reloads(const PairOptions& o, std::vector<ReloadTiming>& timings) {
  return
      [&o, &timings](BatonService& service, int slice, Clock::time_point started, Millis length) {
        const int n = reloads_in_slice(o.reloads, o.rounds, slice);
        for (int k = 0; k < n; ++k) {
          sleep_until(started + length * (k + 1) / (n + 1));
          ReloadTiming t = service.reload();
          service.wait_drained(t);
          t.under_load = t.returned < started + length;
          timings.push_back(t);
        }
      };
}

void run_rolling(const PairOptions& o, InstancesResult& r) {
  r.instances = kInstances;
  r.max_surge = kMaxSurge;
  const HelloConfig rolling{.instances = kInstances, .strategy = "rolling", .max_surge = kMaxSurge};
  const Side quiet{fmt::format("baton, {} instances, no reloads", kInstances), true, rolling};
  const Side reloaded{fmt::format("baton, {} instances, {} rolling reloads", kInstances, o.reloads),
                      true, rolling};
  for (const std::string mode : {"close", "keepalive"}) {
    std::vector<ReloadTiming> timings;
    std::vector<CaseResult> pair =
        run_pair(o, "instances", mode, quiet, reloaded, rolling_reloads(o, timings));
    pair[1].reloads = std::move(timings);
    for (auto& c : pair) r.rolling.push_back(std::move(c));
  }
}

// ---- 2. Rollback to the standby ------------------------------------------------------

/// The pids `status` lists in instances[] (of `generation` only, if > 0).
std::set<int> status_pids(const nlohmann::json& status, int generation = 0) {
  std::set<int> pids;
  for (const auto& i : status.value("instances", nlohmann::json::array())) {
    if (generation <= 0 || i.value("generation", 0) == generation) pids.insert(i.value("pid", 0));
  }
  pids.erase(0);
  return pids;
}

/// The pid in hello's answer "hello from pid N version V", or 0.
int answering_pid(const support::Response& response) {
  int pid = 0;
  return std::sscanf(response.body.c_str(), "hello from pid %d", &pid) == 1 ? pid : 0;
}

/// A reload that leaves the replaced generation up as the standby; the
/// standby's generation and its instance's pid in `rollback`.
void reload_to_standby(BatonService& service, StandbyRollback& rollback) {
  ReloadOutcome out = service.try_reload(false);
  if (!out.ok) service.fail("`baton reload` failed:\n" + out.output);
  rollback.replaced_generation = out.timing.generation;
  const nlohmann::json status = service.status();
  const nlohmann::json standby = status.value("standby", nlohmann::json());
  if (!standby.is_object() || standby.value("ready_instances", 0) < 1) {
    service.fail(fmt::format(
        "after the reload to generation {}, `baton status` shows no ready standby; `baton "
        "reload` printed:\n{}",
        out.timing.generation, out.output));
  }
  rollback.standby_generation = standby.value("generation", 0);
  const std::set<int> pids = status_pids(status, rollback.standby_generation);
  if (pids.size() != 1) {
    service.fail(fmt::format("the standby, generation {}, has {} instances in `baton status`",
                             rollback.standby_generation, pids.size()));
  }
  rollback.standby_pid = *pids.begin();
}

/// New connections (GET /) one after the other, until one is answered by
/// `rollback.standby_pid`: sets first_response_ms (from `started`),
/// other_responses and failed; and command_ms if `command` exits meanwhile.
void connect_until_standby(BatonService& service, BackgroundCommand& command,
                           StandbyRollback& rollback) {
  const Clock::time_point deadline = command.started + kFirstResponseTimeout;
  for (;;) {
    throw_if_interrupted();
    const support::Response response = support::http_get(service.address(), "/", 2s);
    const Clock::time_point now = Clock::now();
    if (rollback.command_ms == 0 && command.child.wait(0ms)) {
      rollback.command_ms = ms_between(command.started, now);
    }
    const int pid = response.ok ? answering_pid(response) : 0;
    if (pid == rollback.standby_pid) {
      rollback.first_response_ms = ms_between(command.started, now);
      return;
    }
    if (pid != 0) {
      ++rollback.other_responses;
    } else {
      ++rollback.failed;
      if (rollback.failure_examples.size() < kMaxExamples) {
        rollback.failure_examples.push_back(
            response.ok ? fmt::format("status {}: {}", response.status, response.body)
                        : response.error);
      }
    }
    if (now >= deadline) {
      service.fail(fmt::format(
          "no response from the standby (generation {}, pid {}) within {} s of `baton "
          "rollback`; it printed:\n{}",
          rollback.standby_generation, rollback.standby_pid,
          std::chrono::duration_cast<std::chrono::seconds>(kFirstResponseTimeout).count(),
          command.output()));
    }
  }
}

/// One reload, then `baton rollback` timed as it brings the standby back;
/// checks that it started no process, and waits for the replaced generation
/// to exit.
StandbyRollback time_rollback(BatonService& service) {
  StandbyRollback rollback;
  reload_to_standby(service, rollback);
  const std::set<int> before = status_pids(service.status());
  BackgroundCommand command = service.start_command("rollback");
  connect_until_standby(service, command, rollback);
  const std::optional<int> exit = command.child.wait(kRollbackTimeout);
  if (rollback.command_ms == 0) rollback.command_ms = ms_between(command.started, Clock::now());
  if (!exit) service.fail("`baton rollback` did not exit within 90 s");
  if (support::exit_code(*exit) != 0) {
    service.fail(fmt::format("`baton rollback` {}; it printed:\n{}",
                             support::describe_wait_status(*exit), command.output()));
  }
  const nlohmann::json status = service.status();
  std::vector<int> started;
  for (int pid : status_pids(status)) {
    if (!before.contains(pid)) started.push_back(pid);
  }
  if (!started.empty() || status.value("generation", 0) != rollback.standby_generation) {
    service.fail(
        fmt::format("the rollback to the standby (generation {}) started pid(s) [{}], which `baton "
                    "status` did not list before it (serving now: generation {}); it printed:\n{}",
                    rollback.standby_generation, fmt::join(started, ", "),
                    status.value("generation", 0), command.output()));
  }
  ReloadTiming drained;  // the rollback's record: generation 2 replaced by the standby
  drained.generation = rollback.standby_generation;
  service.wait_drained(drained);
  return rollback;
}

void run_rollbacks(const PairOptions& o, InstancesResult& r) {
  r.standby_window = kStandbyWindow;
  const int rollbacks = std::max(o.reloads, kMinRollbacks);
  std::fprintf(stderr, "reload_bench: [instances] %d rollbacks to a warm standby ...\n", rollbacks);
  try {
    BatonService service(o.bins, HelloConfig{.standby = kStandbyWindow});
    for (int i = 1; i <= rollbacks; ++i) {
      r.rollbacks.push_back(time_rollback(service));
      const StandbyRollback& b = r.rollbacks.back();
      std::fprintf(stderr,
                   "reload_bench: [instances] rollback %d to generation %d: first response "
                   "from the standby after %.1f ms, `baton rollback` returned after %.1f ms\n",
                   i, b.standby_generation, b.first_response_ms, b.command_ms);
    }
    service.stop();
  } catch (const std::exception& e) {
    throw BenchError(fmt::format("[instances] rollback to a warm standby: {}", e.what()));
  }
}

}  // namespace

InstancesResult run_instances(const PairOptions& o) {
  InstancesResult r;
  run_rolling(o, r);
  run_rollbacks(o, r);
  return r;
}

}  // namespace bench

// `baton verify`: load at the service's public socket from the load client
// (loadclient/) in this process, reloads through the control socket at
// evenly spaced times meanwhile, then the report (verify_report.h).
#include "verify.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control_client.h"
#include "exit_codes.h"
#include "load_client.h"
#include "verify_plan.h"
#include "verify_report.h"

namespace baton {
namespace {

using SteadyClock = std::chrono::steady_clock;

/// How long one request may take before it counts as a timeout or hung.
constexpr Millis kVerifyRequestTimeout{5000};
/// The hard bound on a run however long reloads take: --duration plus this.
constexpr Millis kVerifyOverrun{30 * 60 * 1000};

/// A progress line on stderr while verify runs, redrawn four times a second
/// by a thread of its own (a reload blocks the main thread); only when
/// stderr is a terminal, so that logs and pipes get the report alone.
class ProgressLine {
 public:
  ProgressLine(const load::LoadRun& run, const VerifyPlan& plan)
      : run_(run), plan_(plan), started_(SteadyClock::now()) {
    if (isatty(STDERR_FILENO) == 1) thread_ = std::thread([this] { draw_until_stopped(); });
  }
  ~ProgressLine() { stop(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void reload_done() { reloads_done_.fetch_add(1, std::memory_order_relaxed); }

  /// Stops redrawing and erases the line. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
      std::fputs("\r\033[K", stderr);
    }
  }

 private:
  void draw_until_stopped() noexcept {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_; })) {
      const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started_).count();
      std::fprintf(
          stderr, "\rverify: %.1fs of %.1fs, %s requests, %s failed, %d of %d reloads\033[K",
          elapsed, std::chrono::duration<double>(plan_.duration).count(),
          group_thousands(run_.completed()).c_str(), group_thousands(run_.failed()).c_str(),
          reloads_done_.load(std::memory_order_relaxed), plan_.reloads);
    }
  }

  const load::LoadRun& run_;
  const VerifyPlan& plan_;
  const SteadyClock::time_point started_;
  std::atomic<int> reloads_done_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  /// Set once by stop(); guarded by mutex_.
  bool stopping_ = false;
  /// Not joinable when stderr is not a terminal.
  std::thread thread_;
};

/// `baton status`'s "status" object.
Result<nlohmann::json> fetch_status(const std::string& control_path) {
  auto reply = control_request(control_path, {{"command", "status"}}, [](const auto&) {});
  if (!reply) return reply.error();
  if (!reply->value("ok", false)) return error(reply->value("error", "status failed"));
  return (*reply)["status"];
}

/// Adds the instances `status` lists to `generations` (pid -> generation).
void note_instances(const nlohmann::json& status, std::map<pid_t, int>& generations) {
  for (const auto& i : status.value("instances", nlohmann::json::array())) {
    generations[i.value("pid", 0)] = i.value("generation", 0);
  }
}

/// One reload as `baton reload` asks for it (not waiting for the drain).
ReloadWindow reload_once(const std::string& control_path) {
  ReloadWindow w;
  w.sent = SteadyClock::now();
  auto reply = control_request(control_path, {{"command", "reload"}, {"wait", false}},
                               [](const nlohmann::json&) {});
  w.answered = SteadyClock::now();
  if (!reply) {
    w.error = "cannot ask baton: " + reply.error().message;
    return w;
  }
  w.ok = reply->value("ok", false);
  if (!w.ok) w.error = reply->value("error", "the reload failed");
  w.note = reply->value("message", "");
  if (reply->contains("reload")) {
    w.generation = (*reply)["reload"].value("generation", 0);
    w.pid = (*reply)["reload"].value("pid", 0);
  }
  return w;
}

load::LoadOptions load_options(const VerifyPlan& plan, const std::string& address) {
  load::LoadOptions o;
  o.address = address;
  o.path = plan.path;
  o.mode = plan.keepalive ? load::Mode::kKeepAlive : load::Mode::kConnectionPerRequest;
  o.connections = plan.connections;
  o.rate = plan.rate;
  o.duration = Millis(0);  // until end_at(): --duration, or the last reload's answer
  o.max_duration = plan.duration + kVerifyOverrun;
  o.request_timeout = kVerifyRequestTimeout;
  o.record_latencies = true;
  return o;
}

std::string load_shape(const VerifyPlan& plan) {
  const char* mode = plan.keepalive ? "keep-alive" : "a new connection per request";
  if (plan.rate > 0) {
    return fmt::format("{} requests a second from up to {} clients, {}", plan.rate,
                       plan.connections, mode);
  }
  return fmt::format("{} connections, {}", plan.connections, mode);
}

/// Runs the reloads at their times while `run` loads, and waits for the
/// load to end (at --duration, or after the last reload if that is later);
/// fills `outcome`'s reloads and generations.
void drive_reloads(const std::string& control_path, const VerifyPlan& plan, load::LoadRun& run,
                   VerifyOutcome& outcome) {
  ProgressLine progress(run, plan);
  const auto started = run.started();
  for (Millis at : reload_times(plan.duration, plan.reloads)) {
    std::this_thread::sleep_until(started + at);  // a schedule, not a wait for an event
    outcome.reloads.push_back(reload_once(control_path));
    progress.reload_done();
    if (auto status = fetch_status(control_path)) note_instances(*status, outcome.generations);
  }
  // The load ends at --duration, or now if the reloads took longer.
  run.end_at(run.started() + plan.duration);
  run.wait();
  progress.stop();
}

}  // namespace

int command_verify(const std::string& control_path, const VerifyFlags& flags) {
  auto plan = plan_verify(flags);
  if (!plan) {
    std::fprintf(stderr, "baton: verify: %s\n", plan.error().message.c_str());
    return kExitUsage;
  }
  auto status = fetch_status(control_path);
  if (!status) {
    std::fprintf(stderr, "baton: verify: %s\n", status.error().message.c_str());
    return status.error().sys_errno != 0 ? kExitSystem : kExitFailed;
  }
  auto address = load_address((*status)["sockets"], *plan);
  if (!address) {
    std::fprintf(stderr, "baton: verify: %s\n", address.error().message.c_str());
    return kExitUsage;
  }
  VerifyOutcome outcome;
  outcome.address = *address;
  outcome.load_shape = load_shape(*plan);
  note_instances(*status, outcome.generations);
  auto started = load::LoadRun::start(load_options(*plan, *address));
  if (!started) {
    std::fprintf(stderr, "baton: verify: %s\n", started.error.c_str());
    return started.sys_errno != 0 ? kExitSystem : kExitUsage;
  }
  drive_reloads(control_path, *plan, *started.run, outcome);
  outcome.load = started.run->wait();
  if (auto last = fetch_status(control_path)) note_instances(*last, outcome.generations);
  std::fputs(format_verify_report(outcome).c_str(), stdout);
  return verify_passed(outcome) ? kExitOk : kExitFailed;
}

}  // namespace baton

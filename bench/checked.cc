// Mode "checked"'s measurements (see checked.h).
#include "checked.h"

#include <cstdio>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "pairs.h"
#include "support/loopback.h"

namespace bench {
namespace {

using namespace std::chrono_literals;

// Claim 1: every generation's /healthz fails for its first kProbedBootMs
// (counted from hello's own start); baton probes it every kProbeIntervalMs.
// The passing attempt starts at most one interval after the boot ends; on
// top of that come hello's start (exec to the clock its boot counts from),
// measured in the same run; the passing attempt's own time; and kSlackMs:
// baton reports whole milliseconds (truncated, up to 1 ms) and arms its
// probe timer in whole milliseconds (rounded up, up to 1 ms).
constexpr int kProbeIntervalMs = 100;
constexpr int kProbedBootMs = 1500;
constexpr int kSlackMs = 2;
constexpr int kHealthzSamples = 50;

/// hello gated on `[ready] http = "/healthz"` alone (it never sends READY=1),
/// whose /healthz fails for its first `boot_ms`, on per-generation listeners.
HelloConfig probed_hello(int boot_ms) {
  return {.notify = false,
          .health_fail_ms = boot_ms,
          .listeners = "per-generation",
          .ready_http = "/healthz",
          .ready_interval = fmt::format("{}ms", kProbeIntervalMs)};
}

/// GET /healthz round trips to `address`, one after the other.
LatencySummary measure_healthz(const std::string& address) {
  std::vector<std::chrono::microseconds> round_trips;
  for (int i = 0; i < kHealthzSamples; ++i) {
    const Clock::time_point sent = Clock::now();
    const support::Response r = support::http_get(address, "/healthz", 1s);
    if (!r.ok || r.status != 200) {
      throw BenchError(fmt::format("GET /healthz on {}: {}", address,
                                   r.ok ? fmt::format("status {}", r.status) : r.error));
    }
    round_trips.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent));
  }
  return summarize_latencies(std::move(round_trips));
}

/// A reload with the probe attempts `baton reload` printed: lines such as
/// "generation 2: http /healthz: 503 in 0ms (attempt 3)".
ProbedReload probed_reload(const ReloadTiming& timing, const std::string& output) {
  ProbedReload p{timing, 0, std::nullopt};
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("(attempt ") == std::string::npos) continue;
    ++p.attempts;
    const size_t in = line.rfind(" in ");
    int ms = 0;
    p.last_attempt_ms.reset();
    if (in != std::string::npos && std::sscanf(line.c_str() + in, " in %dms", &ms) == 1) {
      p.last_attempt_ms = ms;
    }
  }
  return p;
}

/// Reloads `service` `reloads` times, one after the other, each waited
/// until the old generation exited; calls `done` with each outcome.
template <class Done>
void reload_in_turn(BatonService& service, int reloads, Done done) {
  for (int i = 1; i <= reloads; ++i) {
    ReloadOutcome out = service.try_reload(false);
    if (!out.ok) throw BenchError("[checked] `baton reload` failed:\n" + out.output);
    service.wait_drained(out.timing);
    done(i, out);
  }
}

/// hello's start as baton sees it: exec → READY=1 of a hello that sends it
/// at once, one per reload.
std::vector<double> measure_start(const PairOptions& o) {
  std::fprintf(stderr, "reload_bench: [checked] hello's start, %d reloads ...\n", o.reloads);
  BatonService service(o.bins, HelloConfig{});
  std::vector<double> start;
  reload_in_turn(service, o.reloads, [&start](int, const ReloadOutcome& out) {
    if (out.timing.exec_to_ready_ms) start.push_back(*out.timing.exec_to_ready_ms);
  });
  service.stop();
  return start;
}

/// Claim 1: reloads of the probed hello, one after the other, no load.
void run_probed_reloads(const PairOptions& o, CheckedResult& r) {
  std::fprintf(stderr, "reload_bench: [checked] %d reloads gated on /healthz ...\n", o.reloads);
  BatonService service(o.bins, probed_hello(kProbedBootMs));
  r.healthz = measure_healthz(service.address());
  reload_in_turn(service, o.reloads, [&r](int i, const ReloadOutcome& out) {
    r.reloads.push_back(probed_reload(out.timing, out.output));
    const auto& ready = out.timing.exec_to_ready_ms;
    std::fprintf(stderr, "reload_bench: [checked] reload %d: exec → ready %s ms, %d attempts\n", i,
                 ready ? step_ms_cell(*ready).c_str() : "?", r.reloads.back().attempts);
  });
  service.stop();
}

}  // namespace

CheckedResult run_checked(const PairOptions& o) {
  CheckedResult r;
  r.interval_ms = kProbeIntervalMs;
  r.boot_ms = kProbedBootMs;
  r.slack_ms = kSlackMs;
  r.start_ms = measure_start(o);
  run_probed_reloads(o, r);
  r.steering = run_pair(
      o, "checked", "close", {"shared listener (no program)", true, {.listeners = "shared"}},
      {"per-generation listeners (steering program)", true, {.listeners = "per-generation"}});
  const Side alone{"hello alone (started as baton starts apps)", false};
  const Side probed{"baton, http probe, per-generation", true, probed_hello(0)};
  for (const std::string mode : {"close", "keepalive"}) {
    for (auto& c : run_pair(o, "checked", mode, alone, probed)) r.overhead.push_back(std::move(c));
  }
  return r;
}

}  // namespace bench

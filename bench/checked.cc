// Mode "checked"'s measurements (see checked.h).
#include "checked.h"

#include <cstdio>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "closed_loop.h"
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
std::vector<double> measure_start(const CheckedOptions& o) {
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
void run_probed_reloads(const CheckedOptions& o, CheckedResult& r) {
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

/// One side of a pair of cases: a name, and hello alone or under baton.
struct Side {
  std::string name;
  bool under_baton = false;
  HelloConfig hello{};
};

/// A side's service, up for the whole pair.
class SideService {
 public:
  SideService(const Binaries& bins, const Side& side) {
    if (side.under_baton) {
      baton_.emplace(bins, side.hello);
    } else {
      alone_.emplace(bins, AloneSession::kLikeBaton);
      alone_->wait_serving();
    }
  }
  const std::string& address() const { return baton_ ? baton_->address() : alone_->address(); }
  void stop() { baton_ ? baton_->stop() : alone_->stop(); }

 private:
  std::optional<BatonService> baton_;
  std::optional<HelloAlone> alone_;
};

/// `baseline` and `measured` both up, and `o.rounds` slices of load on each
/// (duration / rounds long) in alternating order (A B, B A, A B, ...), so
/// that the machine's other work, which comes and goes over seconds, weighs
/// on both alike. Returns the two cases, baseline first, with every slice's
/// req/s.
std::vector<CaseResult> run_pair(const CheckedOptions& o, const std::string& mode,
                                 const Side& baseline, const Side& measured) {
  const Side* sides[2] = {&baseline, &measured};
  SideService services[2] = {{o.bins, baseline}, {o.bins, measured}};
  load::LoadResult totals[2];
  std::vector<double> slice_rps[2];
  const Millis slice = o.duration / o.rounds;
  for (int round = 0; round < o.rounds; ++round) {
    for (int k = 0; k < 2; ++k) {
      const int side = round % 2 == 0 ? k : 1 - k;
      load::LoadResult part = run_load(services[side].address(), mode, o.connections, slice);
      const double seconds = std::chrono::duration<double>(part.elapsed).count();
      slice_rps[side].push_back(seconds > 0 ? static_cast<double>(part.ok) / seconds : 0);
      add_load(totals[side], std::move(part));
    }
  }
  std::vector<CaseResult> cases;
  for (int side = 0; side < 2; ++side) {
    services[side].stop();
    CaseResult c = summarize_case(mode, sides[side]->name, std::move(totals[side]), {});
    c.baseline = side == 0;
    c.under_baton = sides[side]->under_baton;
    c.slice_rps = std::move(slice_rps[side]);
    std::fprintf(stderr, "reload_bench: [checked/%s] %s: %.0f req/s, %llu failed\n", mode.c_str(),
                 c.name.c_str(), requests_per_second(c), static_cast<unsigned long long>(c.failed));
    cases.push_back(std::move(c));
  }
  return cases;
}

/// run_pair, with progress, and the pair named in a failure's message.
std::vector<CaseResult> run_pair_logged(const CheckedOptions& o, const std::string& mode,
                                        const Side& baseline, const Side& measured) {
  const std::string what =
      fmt::format("[checked/{}] {} against {}", mode, measured.name, baseline.name);
  std::fprintf(stderr, "reload_bench: %s, %d slices each ...\n", what.c_str(), o.rounds);
  try {
    return run_pair(o, mode, baseline, measured);
  } catch (const std::exception& e) {
    throw BenchError(fmt::format("{}: {}", what, e.what()));
  }
}

}  // namespace

CheckedResult run_checked(const CheckedOptions& o) {
  CheckedResult r;
  r.interval_ms = kProbeIntervalMs;
  r.boot_ms = kProbedBootMs;
  r.slack_ms = kSlackMs;
  r.start_ms = measure_start(o);
  run_probed_reloads(o, r);
  r.steering = run_pair_logged(
      o, "close", {"shared listener (no program)", true, {.listeners = "shared"}},
      {"per-generation listeners (steering program)", true, {.listeners = "per-generation"}});
  const Side alone{"hello alone (started as baton starts apps)", false};
  const Side probed{"baton, http probe, per-generation", true, probed_hello(0)};
  for (const std::string mode : {"close", "keepalive"}) {
    for (auto& c : run_pair_logged(o, mode, alone, probed)) r.overhead.push_back(std::move(c));
  }
  return r;
}

}  // namespace bench

// Mode "checked"'s tables and verdicts (see checked_report.h).
#include "checked_report.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace bench {
namespace {

/// The steering program's bound (claim 2) and baton's with probes (claim 3).
constexpr double kSteeringBound = 0.99;
constexpr double kOverheadBound = 0.98;

/// One ratio claim: the mean req/s of the measured case over the baseline's,
/// and the ratio of each round (a baseline run and a measured run next to
/// each other in time), whose spread shows the run's noise.
struct RatioClaim {
  double ratio = 0;
  double round_min = 0, round_max = 0;
};

RatioClaim ratio_claim(const std::vector<CaseResult>& cases, const std::string& mode) {
  double base_sum = 0, other_sum = 0;
  int base_n = 0, other_n = 0;
  std::vector<double> rounds;
  for (const auto& c : cases) {
    if (c.mode != mode) continue;
    (c.baseline ? base_sum : other_sum) += requests_per_second(c);
    ++(c.baseline ? base_n : other_n);
    if (c.baseline) continue;
    for (const auto& b : cases) {
      if (b.baseline && b.mode == mode && b.round == c.round && requests_per_second(b) > 0) {
        rounds.push_back(requests_per_second(c) / requests_per_second(b));
      }
    }
  }
  RatioClaim r;
  if (base_n == 0 || other_n == 0 || base_sum <= 0) return r;
  r.ratio = (other_sum / other_n) / (base_sum / base_n);
  if (!rounds.empty()) {
    r.round_min = *std::min_element(rounds.begin(), rounds.end());
    r.round_max = *std::max_element(rounds.begin(), rounds.end());
  }
  return r;
}

/// "yes"; "no"; or, when some round alone met the bound, "not resolved".
std::string verdict(const RatioClaim& r, double bound) {
  if (r.ratio >= bound) return "**yes**";
  if (r.round_max >= bound) return "**not resolved** (below, but within the rounds' spread)";
  return "**no**";
}

double mean_rps(const std::vector<CaseResult>& cases, const std::string& mode, bool baseline) {
  double sum = 0;
  int n = 0;
  for (const auto& c : cases) {
    if (c.mode != mode || c.baseline != baseline) continue;
    sum += requests_per_second(c);
    ++n;
  }
  return n > 0 ? sum / n : 0;
}

void print_rounds_table(const std::vector<CaseResult>& cases) {
  fmt::print("| load | round | case | req/s | failed | p50 / p99 / max | app pids |\n");
  fmt::print("|:--|--:|:--|--:|--:|--:|--:|\n");
  for (const auto& c : cases) {
    fmt::print("| {} | {} | {} | {:.0f} | {} | {} | {} |\n", c.mode, c.round, c.name,
               requests_per_second(c), failures_cell(c), latency_cell(c.steady), c.app_pids);
  }
  fmt::print("\n");
  for (const auto& c : cases) {
    if (c.failed == 0) continue;
    fmt::print("Failed requests in {} round {} ({}), examples:\n\n", c.mode, c.round, c.name);
    for (const auto& e : c.failure_examples) fmt::print("- `{}`\n", e);
    fmt::print("\n");
  }
}

/// "mean baseline → mean measured req/s: ratio R (rounds lo–hi); ≥ bound: verdict".
void print_ratio_line(const std::vector<CaseResult>& cases, const std::string& mode, double bound) {
  const RatioClaim r = ratio_claim(cases, mode);
  fmt::print(
      "- {}: {:.0f} → {:.0f} req/s (means), **ratio {:.3f}** (per round {:.3f}–{:.3f}); "
      "≥ {:.2f}: {}\n",
      mode, mean_rps(cases, mode, true), mean_rps(cases, mode, false), r.ratio, r.round_min,
      r.round_max, bound, verdict(r, bound));
}

/// The largest exec → ready minus the boot time over the reloads; -1 if none.
double max_excess(const CheckedResult& r) {
  double worst = -1;
  for (const auto& p : r.reloads) {
    if (p.timing.exec_to_ready_ms) worst = std::max(worst, *p.timing.exec_to_ready_ms - r.boot_ms);
  }
  return worst;
}

std::string optional_ms(const std::optional<double>& v) {
  return v ? step_ms_cell(*v) : "–";
}

/// "17 (0 ms)": attempts, and the last one's round trip as baton timed it.
std::string attempts_cell(const ProbedReload& p) {
  if (!p.last_attempt_ms) return std::to_string(p.attempts);
  return fmt::format("{} ({} ms)", p.attempts, *p.last_attempt_ms);
}

void print_probe_rows(const CheckedResult& r) {
  fmt::print(
      "| reload | generation | `baton reload` wall time | exec → ready | exec → ready − boot | "
      "probe attempts (the last one's time) | ready → drain signal | drain |\n");
  fmt::print("|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (size_t i = 0; i < r.reloads.size(); ++i) {
    const ReloadTiming& t = r.reloads[i].timing;
    const std::optional<double> excess =
        t.exec_to_ready_ms ? std::optional(*t.exec_to_ready_ms - r.boot_ms) : std::nullopt;
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} |\n", i + 1, t.generation,
               step_ms_cell(t.wall_ms), optional_ms(t.exec_to_ready_ms), optional_ms(excess),
               attempts_cell(r.reloads[i]), optional_ms(t.ready_to_drain_ms),
               optional_ms(t.drain_ms));
  }
  fmt::print("\n");
}

void print_probe_claim(const CheckedResult& r) {
  fmt::print(
      "#### 1. exec → ready of a probed app: its boot time plus at most one probe interval\n\n"
      "hello never sends READY=1 (`HELLO_NO_NOTIFY=1`); `[ready] http = \"/healthz\"`, "
      "**`interval = \"{}ms\"`**; every generation's /healthz answers 503 for its first {} ms "
      "(`HELLO_HEALTH_FAIL_MS`, its boot time). Reloads one after the other, each waited "
      "until the old generation exited; no client load. Times in ms, from `baton status "
      "--json` (`last_reload`); ready → drain signal includes baton's settle after the "
      "switch.\n\n",
      r.interval_ms, r.boot_ms);
  print_probe_rows(r);
  const double worst = max_excess(r);
  const int bound = r.interval_ms + r.allowance_ms;
  fmt::print("**exec→ready − boot: max {} ms (interval {} ms)**; ≤ interval + {} ms: {}\n\n",
             worst < 0 ? "–" : step_ms_cell(worst), r.interval_ms, r.allowance_ms,
             worst >= 0 && worst <= bound ? "**yes**" : "**no**");
  fmt::print(
      "The allowance covers what comes on top of the interval: the passing attempt's own round "
      "trip (GET /healthz to the serving generation here, {} requests: p50 / p99 / max {} ms), "
      "hello's start from exec to the clock its {} ms count from, and baton's whole-millisecond "
      "timings.\n\n",
      r.healthz.count, latency_cell(r.healthz), r.boot_ms);
  const bool unprobed = std::any_of(r.reloads.begin(), r.reloads.end(),
                                    [](const ProbedReload& p) { return p.attempts < 2; });
  if (unprobed) {
    fmt::print(
        "**Some reloads printed fewer than two probe attempts**: with a {} ms boot and a {} ms "
        "interval baton should have seen several 503s. This baton may not wait for /healthz.\n\n",
        r.boot_ms, r.interval_ms);
  }
}

void print_steering_claim(const CheckedResult& r) {
  fmt::print(
      "#### 2. The steering program costs at most 1 % of the new-connection rate\n\n"
      "hello under baton (READY=1, no probe, no reloads), a new TCP connection per request; "
      "baseline `listeners = \"shared\"` (one socket, no SO_REUSEPORT, no program) against "
      "`listeners = \"per-generation\"` (a reuseport group with the classic-BPF steering "
      "program, run once per SYN). Rounds alternate the order (A B, B A, ...).\n\n");
  print_rounds_table(r.steering);
  print_ratio_line(r.steering, "close", kSteeringBound);
  fmt::print("\n");
}

void print_overhead_claim(const CheckedResult& r) {
  fmt::print(
      "#### 3. Throughput under baton with probes: at least 0.98 of the app alone\n\n"
      "Baseline: hello alone (socket activated by the bench, as in the other modes); against "
      "hello under baton with `HELLO_NO_NOTIFY=1`, `[ready] http = \"/healthz\"`, `interval = "
      "\"{}ms\"` and `listeners = \"per-generation\"`; no reloads. Rounds alternate the "
      "order.\n\n",
      r.interval_ms);
  print_rounds_table(r.overhead);
  for (const char* mode : {"close", "keepalive"})
    print_ratio_line(r.overhead, mode, kOverheadBound);
  fmt::print("\n");
}

}  // namespace

void print_checked_report(const CheckedResult& r) {
  fmt::print("### Mode `checked`: readiness probes and per-generation listeners\n\n");
  print_probe_claim(r);
  print_steering_claim(r);
  print_overhead_claim(r);
  std::fflush(stdout);
}

uint64_t failed_under_baton(const CheckedResult& r) {
  return failed_under_baton(r.steering) + failed_under_baton(r.overhead);
}

}  // namespace bench

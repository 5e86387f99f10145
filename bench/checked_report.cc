// Mode "checked"'s tables and verdicts (see checked_report.h).
#include "checked_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace bench {
namespace {

/// The steering program's bound (claim 2) and baton's with probes (claim 3).
constexpr double kSteeringBound = 0.99;
constexpr double kOverheadBound = 0.98;

/// One ratio claim: the measured case's req/s over the baseline's (all
/// slices), and the ratios of the slice pairs (a baseline slice and a
/// measured slice next to each other in time): their mean, its 95 %
/// confidence interval (Student's t), and their range, which show how much
/// of the difference this run's noise can hide.
struct RatioClaim {
  double ratio = 0;
  size_t pairs = 0;
  double pair_mean = 0, low = 0, high = 0;  // interval of the mean pair ratio
  double pair_min = 0, pair_max = 0;
};

/// Two-sided 95 % Student's t for `df` degrees of freedom (2.0 beyond 10).
double t95(size_t df) {
  static constexpr double kT[] = {12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23};
  return df >= 1 && df <= 10 ? kT[df - 1] : 2.0;
}

void summarize_pairs(const std::vector<double>& pairs, RatioClaim& r) {
  r.pairs = pairs.size();
  if (pairs.empty()) return;
  double sum = 0, squares = 0;
  for (double p : pairs) sum += p;
  r.pair_mean = sum / static_cast<double>(pairs.size());
  for (double p : pairs) squares += (p - r.pair_mean) * (p - r.pair_mean);
  const double n = static_cast<double>(pairs.size());
  const double half =
      pairs.size() < 2 ? 0 : t95(pairs.size() - 1) * std::sqrt(squares / (n - 1) / n);
  r.low = r.pair_mean - half;
  r.high = r.pair_mean + half;
  r.pair_min = *std::min_element(pairs.begin(), pairs.end());
  r.pair_max = *std::max_element(pairs.begin(), pairs.end());
}

/// The claim of the pair of cases under load `mode` (baseline and measured).
RatioClaim ratio_claim(const std::vector<CaseResult>& cases, const std::string& mode) {
  const CaseResult* sides[2] = {nullptr, nullptr};
  for (const auto& c : cases) {
    if (c.mode == mode) sides[c.baseline ? 0 : 1] = &c;
  }
  RatioClaim r;
  if (!sides[0] || !sides[1] || requests_per_second(*sides[0]) <= 0) return r;
  r.ratio = requests_per_second(*sides[1]) / requests_per_second(*sides[0]);
  const auto& base = sides[0]->slice_rps;
  const auto& measured = sides[1]->slice_rps;
  std::vector<double> pairs;
  for (size_t i = 0; i < std::min(base.size(), measured.size()); ++i) {
    if (base[i] > 0) pairs.push_back(measured[i] / base[i]);
  }
  summarize_pairs(pairs, r);
  return r;
}

/// "yes" or "no" when the slice pairs' interval is wholly on one side of
/// the bound; otherwise "not resolved", saying on which side the ratio is:
/// this run's noise cannot tell.
std::string verdict(const RatioClaim& r, double bound) {
  if (r.pairs >= 2 && r.low >= bound) return "**yes**";
  if (r.pairs >= 2 && r.high < bound) return "**no**";
  return r.ratio >= bound ? "**not resolved** (the ratio meets it; the interval reaches below)"
                          : "**not resolved** (the ratio is below; the interval reaches above)";
}

/// "8342 8150 6721": req/s of each slice, in the order they ran.
std::string slices_cell(const CaseResult& c) {
  std::string out;
  for (double v : c.slice_rps) out += fmt::format("{}{:.0f}", out.empty() ? "" : " ", v);
  return out;
}

void print_pair_table(const std::vector<CaseResult>& cases) {
  fmt::print("| load | case | req/s | req/s per slice | failed | p50 / p99 / max | app pids |\n");
  fmt::print("|:--|:--|--:|--:|--:|--:|--:|\n");
  for (const auto& c : cases) {
    fmt::print("| {} | {} | {:.0f} | {} | {} | {} | {} |\n", c.mode, c.name, requests_per_second(c),
               slices_cell(c), failures_cell(c), latency_cell(c.steady), c.app_pids);
  }
  fmt::print("\n");
  for (const auto& c : cases) {
    if (c.failed == 0) continue;
    fmt::print("Failed requests in {} / {}, examples:\n\n", c.mode, c.name);
    for (const auto& e : c.failure_examples) fmt::print("- `{}`\n", e);
    fmt::print("\n");
  }
}

/// "ratio R (slice pairs: mean, 95 % interval, range); ≥ bound: verdict".
void print_ratio_line(const std::vector<CaseResult>& cases, const std::string& mode, double bound) {
  const RatioClaim r = ratio_claim(cases, mode);
  fmt::print(
      "- {}: **ratio {:.3f}** (all slices); slice pairs: mean {:.3f}, 95 % interval "
      "{:.3f}–{:.3f}, range {:.3f}–{:.3f} ({} pairs); ≥ {:.2f}: {}\n",
      mode, r.ratio, r.pair_mean, r.low, r.high, r.pair_min, r.pair_max, r.pairs, bound,
      verdict(r, bound));
}

/// The largest exec → ready minus the boot time over the reloads ("–" if none).
std::string max_excess_cell(const CheckedResult& r) {
  std::optional<double> worst;
  for (const auto& p : r.reloads) {
    if (!p.timing.exec_to_ready_ms) continue;
    const double excess = *p.timing.exec_to_ready_ms - r.boot_ms;
    if (!worst || excess > *worst) worst = excess;
  }
  return worst ? step_ms_cell(*worst) : "–";
}

/// How far exec → ready of `p` may exceed the boot time: the interval, plus
/// what comes on top of it: hello's start from exec to the clock its boot
/// counts from (the largest of `start_ms`), the passing attempt's own time
/// (as baton printed it) and `slack_ms`.
double allowed_excess_ms(const CheckedResult& r, const ProbedReload& p) {
  const double start =
      r.start_ms.empty() ? 0 : *std::max_element(r.start_ms.begin(), r.start_ms.end());
  return r.interval_ms + start + p.last_attempt_ms.value_or(0) + r.slack_ms;
}

/// "**yes**" if every reload's exec → ready − boot stayed within its allowance.
std::string probe_verdict(const CheckedResult& r) {
  const bool held = !r.reloads.empty() &&
                    std::all_of(r.reloads.begin(), r.reloads.end(), [&r](const ProbedReload& p) {
                      return p.timing.exec_to_ready_ms &&
                             *p.timing.exec_to_ready_ms - r.boot_ms <= allowed_excess_ms(r, p);
                    });
  return held ? "**yes**" : "**no**";
}

/// "median / max" of hello's start, "–" if not measured.
std::string start_cell(const CheckedResult& r) {
  if (r.start_ms.empty()) return "–";
  std::vector<double> v = r.start_ms;
  std::sort(v.begin(), v.end());
  return fmt::format("{} / {}", step_ms_cell(v[v.size() / 2]), step_ms_cell(v.back()));
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
      "allowed | probe attempts (the last one's time) | ready → drain signal | drain |\n");
  fmt::print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (size_t i = 0; i < r.reloads.size(); ++i) {
    const ReloadTiming& t = r.reloads[i].timing;
    const std::optional<double> excess =
        t.exec_to_ready_ms ? std::optional(*t.exec_to_ready_ms - r.boot_ms) : std::nullopt;
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", i + 1, t.generation,
               step_ms_cell(t.wall_ms), optional_ms(t.exec_to_ready_ms), optional_ms(excess),
               step_ms_cell(allowed_excess_ms(r, r.reloads[i])), attempts_cell(r.reloads[i]),
               optional_ms(t.ready_to_drain_ms), optional_ms(t.drain_ms));
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
      "--json` (`last_reload`). The status has no time of the switch: with no smoke checks "
      "baton switches as the candidate becomes ready, then waits for the old listeners' "
      "queues to stay empty for 50 ms before the drain signal (ready → drain signal).\n\n",
      r.interval_ms, r.boot_ms);
  print_probe_rows(r);
  fmt::print(
      "**exec→ready − boot: max {} ms (interval {} ms)**; within interval + allowance in every "
      "reload: {}\n\n",
      max_excess_cell(r), r.interval_ms, probe_verdict(r));
  fmt::print(
      "*allowed* = interval + what comes on top of it: hello's start from exec to the clock "
      "its {} ms count from (measured in this run as exec → READY=1 of {} reloads of a hello "
      "that sends READY=1 at once: median / max {} ms; the max is used), the passing "
      "attempt's own time as baton printed it, and {} ms for baton's whole-millisecond "
      "timings and timers. GET /healthz round trips to the serving generation, {} requests: "
      "p50 / p99 / max {} ms.\n\n",
      r.boot_ms, r.start_ms.size(), start_cell(r), r.slack_ms, r.healthz.count,
      latency_cell(r.healthz));
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
      "program, run once per SYN). Both run for the whole pair; the load moves between them in "
      "slices, alternating the order (A B, B A, ...).\n\n");
  print_pair_table(r.steering);
  print_ratio_line(r.steering, "close", kSteeringBound);
  fmt::print("\n");
}

void print_overhead_claim(const CheckedResult& r) {
  fmt::print(
      "#### 3. Throughput under baton with probes: at least 0.98 of the app alone\n\n"
      "Baseline: hello alone, socket activated by the bench as in the other modes but started "
      "as baton starts apps (in the bench's session, so its CPU autogroup, with a process "
      "group of its own; the other modes' baseline has a session of its own); against "
      "hello under baton with `HELLO_NO_NOTIFY=1`, `[ready] http = \"/healthz\"`, `interval = "
      "\"{}ms\"` and `listeners = \"per-generation\"`; no reloads. Slices alternate as "
      "above.\n\n",
      r.interval_ms);
  print_pair_table(r.overhead);
  for (const char* mode : {"close", "keepalive"}) {
    print_ratio_line(r.overhead, mode, kOverheadBound);
  }
  fmt::print("\n");
}

void print_ratio_row(const std::string& claim, const std::vector<CaseResult>& cases,
                     const std::string& mode, double bound) {
  const RatioClaim c = ratio_claim(cases, mode);
  fmt::print("| {} | {:.3f} ({:.3f}–{:.3f}) | ≥ {:.2f} | {} |\n", claim, c.ratio, c.low, c.high,
             bound, verdict(c, bound));
}

/// One line per claim: what was measured against its bound, and whether it held.
void print_claims(const CheckedResult& r) {
  fmt::print("#### The claims in this run\n\n");
  fmt::print("| claim | measured | bound | held |\n|:--|--:|--:|:--|\n");
  fmt::print("| 1. exec → ready − boot, max of {} reloads | {} ms | ≤ {} ms + allowance | {} |\n",
             r.reloads.size(), max_excess_cell(r), r.interval_ms, probe_verdict(r));
  print_ratio_row("2. per-generation / shared listeners, req/s (close)", r.steering, "close",
                  kSteeringBound);
  print_ratio_row("3. baton with the probe / hello alone, req/s (close)", r.overhead, "close",
                  kOverheadBound);
  print_ratio_row("3. the same, keep-alive", r.overhead, "keepalive", kOverheadBound);
  fmt::print(
      "\nRatios: all slices, with the 95 % interval of the slice pairs' mean in parentheses.\n\n");
}

}  // namespace

void print_checked_report(const CheckedResult& r) {
  fmt::print("### Mode `checked`: readiness probes and per-generation listeners\n\n");
  print_probe_claim(r);
  print_steering_claim(r);
  print_overhead_claim(r);
  print_claims(r);
  std::fflush(stdout);
}

uint64_t failed_under_baton(const CheckedResult& r) {
  return failed_under_baton(r.steering) + failed_under_baton(r.overhead);
}

}  // namespace bench

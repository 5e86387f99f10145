// Mode "checked"'s tables and verdicts (see checked_report.h).
#include "checked_report.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "pair_report.h"

namespace bench {
namespace {

/// The steering program's bound (claim 2) and baton's with probes (claim 3).
constexpr double kSteeringBound = 0.99;
constexpr double kOverheadBound = 0.98;

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

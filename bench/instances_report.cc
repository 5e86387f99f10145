// Mode "instances"'s tables and verdicts (see instances_report.h).
#include "instances_report.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "pair_report.h"

namespace bench {
namespace {

/// Rolling reloads' throughput against the same instances without reloads.
constexpr double kRollingBound = 0.98;

/// The distribution of `values_ms` (min, p50, p90, max) as the latency helpers see it.
LatencySummary summarize_ms(const std::vector<double>& values_ms) {
  std::vector<std::chrono::microseconds> us;
  for (double v : values_ms) us.emplace_back(static_cast<int64_t>(v * 1000));
  return summarize_latencies(std::move(us));
}

/// "min / p50 / p90 / max" of baton's whole-millisecond step timings.
std::string steps_cell(const std::vector<double>& values_ms) {
  const LatencySummary s = summarize_ms(values_ms);
  if (s.count == 0) return "–";
  return fmt::format("{} / {} / {} / {}", step_ms_cell(s.min_ms), step_ms_cell(s.p50_ms),
                     step_ms_cell(s.p90_ms), step_ms_cell(s.max_ms));
}

/// summarize_ms of one field of every rollback.
template <class Get>
LatencySummary rollback_summary(const InstancesResult& r, Get get) {
  std::vector<double> values;
  for (const auto& b : r.rollbacks) values.push_back(get(b));
  return summarize_ms(values);
}

/// "- close: 5 rolling reloads (5 returned within their slice); ...": the
/// measured cases' reloads, with `baton reload`'s and the drain's distributions.
void print_reload_lines(const InstancesResult& r) {
  for (const auto& c : r.rolling) {
    if (c.baseline) continue;
    std::vector<double> wall, drain;
    for (const auto& t : c.reloads) {
      wall.push_back(t.wall_ms);
      if (t.drain_ms) drain.push_back(*t.drain_ms);
    }
    const auto under_load = std::count_if(c.reloads.begin(), c.reloads.end(),
                                          [](const ReloadTiming& t) { return t.under_load; });
    fmt::print(
        "- {}: {} rolling reloads ({} returned within their slice); `baton reload` wall time "
        "min / p50 / p90 / max {} ms; the last drain signal → the last old instance exited {} "
        "ms\n",
        c.mode, c.reloads.size(), under_load, steps_cell(wall), steps_cell(drain));
  }
  fmt::print("\n");
}

void print_rolling(const InstancesResult& r) {
  fmt::print(
      "#### 1. Rolling reloads: throughput at least {:.2f} of the same instances without "
      "reloads\n\n"
      "hello under baton with `instances = {}`, `strategy = \"rolling\"`, `max_surge = {}`, "
      "twice: the baseline without reloads, and the measured service, reloaded (`baton "
      "reload`, each waited until its last old instance exited) during its own slices of "
      "load, evenly spaced through them. Both run for the whole pair; the load moves between "
      "them in slices, alternating the order (A B, B A, ...). *app pids*: {} instances × "
      "(reloads + 1) if every instance of every generation served.\n\n",
      kRollingBound, r.instances, r.max_surge, r.instances);
  print_pair_table(r.rolling);
  for (const char* mode : {"close", "keepalive"}) print_ratio_line(r.rolling, mode, kRollingBound);
  fmt::print("\n");
  print_reload_lines(r);
}

void print_rollback_rows(const InstancesResult& r) {
  fmt::print(
      "| rollback | standby generation (pid) | replaced generation | first response from the "
      "standby | `baton rollback` returned | responses from others before | failed |\n");
  fmt::print("|--:|--:|--:|--:|--:|--:|--:|\n");
  for (size_t i = 0; i < r.rollbacks.size(); ++i) {
    const StandbyRollback& b = r.rollbacks[i];
    fmt::print("| {} | {} ({}) | {} | {} | {} | {} | {} |\n", i + 1, b.standby_generation,
               b.standby_pid, b.replaced_generation, step_ms_cell(b.first_response_ms),
               step_ms_cell(b.command_ms), b.other_responses, b.failed);
  }
  fmt::print("\n");
  for (const auto& b : r.rollbacks) {
    if (b.failed == 0) continue;
    fmt::print("Failed connections during the rollback to generation {}, examples:\n\n",
               b.standby_generation);
    for (const auto& e : b.failure_examples) fmt::print("- `{}`\n", e);
    fmt::print("\n");
  }
}

void print_rollbacks(const InstancesResult& r) {
  fmt::print(
      "#### 2. Rollback to a warm standby\n\n"
      "hello under baton with `standby = \"{}\"` (one instance). {} times: `baton reload` (the "
      "replaced generation stays up as the standby), then `baton rollback -c CONFIG` started in "
      "the background while the bench opens new connections (GET /, one after the other) "
      "until one is answered by the standby's pid. Times in ms from just before the rollback "
      "was started. After each rollback `baton status` listed no pid it had not listed "
      "before (a new one fails the run), and the bench waited for the replaced generation "
      "to exit.\n\n",
      r.standby_window, r.rollbacks.size());
  print_rollback_rows(r);
  fmt::print("| {} rollbacks | min / p50 / p90 / max (ms) |\n|:--|--:|\n", r.rollbacks.size());
  fmt::print("| start → first response from the standby | {} |\n",
             distribution_cell(rollback_summary(
                 r, [](const StandbyRollback& b) { return b.first_response_ms; })));
  fmt::print("| `baton rollback` wall time | {} |\n\n",
             distribution_cell(
                 rollback_summary(r, [](const StandbyRollback& b) { return b.command_ms; })));
}

void print_claims(const InstancesResult& r) {
  fmt::print("#### The claims in this run\n\n");
  fmt::print("| claim | measured | bound | held |\n|:--|--:|--:|:--|\n");
  const std::string claim = fmt::format("rolling N={} throughput ≥ {:.2f} of N={} without reloads",
                                        r.instances, kRollingBound, r.instances);
  print_ratio_row(claim + " (close)", r.rolling, "close", kRollingBound);
  print_ratio_row(claim + " (keep-alive)", r.rolling, "keepalive", kRollingBound);
  fmt::print(
      "| a rollback to the standby starts no process | 0 new pids in {} rollbacks | 0 | "
      "**yes** |\n",
      r.rollbacks.size());
  fmt::print(
      "\nRatios: all slices, with the 95 % interval of the slice pairs' mean in parentheses.\n\n");
}

}  // namespace

void print_instances_report(const InstancesResult& r) {
  fmt::print(
      "### Mode `instances`: rolling reloads of several instances, and the warm standby\n\n");
  print_rolling(r);
  print_rollbacks(r);
  print_claims(r);
  std::fflush(stdout);
}

uint64_t failed_under_baton(const InstancesResult& r) {
  uint64_t failed = failed_under_baton(r.rolling);
  for (const auto& b : r.rollbacks) failed += static_cast<uint64_t>(b.failed);
  return failed;
}

}  // namespace bench

// The soak benchmark's checks and markdown tables (see soak_report.h).
#include "soak_report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>

#include <fmt/format.h>

namespace bench {
namespace {

/// Reloads compared at the start and the end of the run ("first 100").
constexpr size_t kTrendReloads = 100;
/// Points of the RssAnon trajectory printed under the resource table.
constexpr size_t kTrajectoryPoints = 11;

uint64_t total_failed(const SoakResult& r) {
  uint64_t n = 0;
  for (const auto& l : r.loads) n += l.result.failed();
  return n;
}

uint64_t failures_of(const load::LoadResult& result, load::Failure kind) {
  const auto it = result.failures.find(kind);
  return it == result.failures.end() ? 0 : it->second;
}

/// Where a resource peaked: its value and the first sample with it (-1: the end sample).
struct Peak {
  int64_t value = 0;
  int after_reload = 0;
};

Peak peak(const SoakResult& r, const std::function<int64_t(const ProcSample&)>& get) {
  Peak p{get(r.samples.front().proc), r.samples.front().after_reload};
  for (const auto& s : r.samples) {
    if (get(s.proc) > p.value) p = {get(s.proc), s.after_reload};
  }
  if (get(r.end) > p.value) p = {get(r.end), -1};
  return p;
}

const ProcSample& start_of(const SoakResult& r) {
  static const ProcSample kNone{};
  return r.samples.empty() ? kNone : r.samples.front().proc;
}

bool fds_ok(const SoakResult& r) {
  return r.end.fds == start_of(r).fds;
}
bool zombies_ok(const SoakResult& r) {
  return r.end.zombies == 0;
}
bool rss_ok(const SoakResult& r) {
  return r.end.rss_anon_kib <= start_of(r).rss_anon_kib + kRssAnonToleranceKib;
}

std::string bold_if(bool bad, const std::string& text) {
  return bad ? "**" + text + "**" : text;
}

void print_header(const SoakResult& r) {
  std::string loads;
  for (const auto& l : r.loads) {
    loads += fmt::format("{}{} client threads in mode `{}`", loads.empty() ? "" : " and ",
                         l.connections, l.mode);
  }
  fmt::print("## soak\n\n");
  fmt::print(
      "{}; tests/apps/test_app under `baton run`; {} reloads (`baton reload --wait`, one after "
      "another) under closed-loop load from {}, concurrently, all on loopback. baton's own "
      "process sampled after every {} reload{}.\n\n",
      r.machine, r.reloads_requested, loads, r.sample_every, r.sample_every == 1 ? "" : "s");
}

void print_load_row(const std::string& name, int connections, const load::LoadResult& l,
                    double seconds) {
  std::string kinds;
  for (const load::Failure kind : load::kAllFailures) {
    kinds += fmt::format(" {} |",
                         bold_if(failures_of(l, kind) > 0, std::to_string(failures_of(l, kind))));
  }
  fmt::print("| {} | {} | {} | {} | {} |{} {:.0f} |\n", name, connections, l.ok + l.failed(), l.ok,
             bold_if(l.failed() > 0, std::to_string(l.failed())), kinds,
             seconds > 0 ? static_cast<double>(l.ok) / seconds : 0.0);
}

void print_requests(const SoakResult& r) {
  fmt::print("### Requests\n\n| load | client threads | requests | ok | failed |");
  for (const load::Failure kind : load::kAllFailures) fmt::print(" {} |", load::to_string(kind));
  fmt::print(" req/s |\n|:--|--:|--:|--:|--:|");
  for (size_t i = 0; i < std::size(load::kAllFailures); ++i) fmt::print("--:|");
  fmt::print("--:|\n");
  load::LoadResult total;
  int connections = 0;
  double seconds = 0;
  for (const auto& l : r.loads) {
    const double s = static_cast<double>(l.result.elapsed.count()) / 1000.0;
    print_load_row(fmt::format("`{}`", l.mode), l.connections, l.result, s);
    total.ok += l.result.ok;
    for (const auto& [kind, n] : l.result.failures) total.failures[kind] += n;
    connections += l.connections;
    seconds = std::max(seconds, s);
  }
  if (r.loads.size() > 1) print_load_row("total", connections, total, seconds);
  fmt::print("\nApp processes that answered requests: {} (of {} generations started).\n\n",
             r.app_pids, r.reloads.size() + 1);
  for (const auto& l : r.loads) {
    for (const auto& e : l.result.failure_examples) fmt::print("- {}: `{}`\n", l.mode, e);
  }
}

void print_reloads(const SoakResult& r) {
  const size_t done = r.reloads.size();
  fmt::print("### Reloads\n\n");
  fmt::print(
      "| requested | ok | rolled back or refused | reload loop wall time | reloads/s | whole run "
      "(start to baton stopped) |\n|--:|--:|--:|--:|--:|--:|\n");
  fmt::print("| {} | {} | {} | {:.1f} s | {:.2f} | {:.1f} s |\n\n", r.reloads_requested, done,
             bold_if(r.reloads_failed > 0, std::to_string(r.reloads_failed)), r.reload_loop_seconds,
             r.reload_loop_seconds > 0 ? static_cast<double>(done) / r.reload_loop_seconds : 0.0,
             r.total_seconds);
  if (!r.stopped_early.empty()) fmt::print("**Stopped early: {}.**\n\n", r.stopped_early);
  for (const auto& m : r.reload_failures) fmt::print("- `{}`\n", m);
  if (!r.reload_failures.empty()) fmt::print("\n");
}

/// "p50 / p99 / max" of one step over reloads [from, to).
std::string step_cell(const std::vector<ReloadTiming>& reloads, size_t from, size_t to,
                      const std::function<std::optional<double>(const ReloadTiming&)>& get) {
  std::vector<std::chrono::microseconds> values;
  for (size_t i = from; i < to; ++i) {
    if (auto v = get(reloads[i])) values.emplace_back(static_cast<int64_t>(*v * 1000));
  }
  return latency_cell(summarize_latencies(std::move(values)));
}

void print_timing_row(const std::string& name, const std::vector<ReloadTiming>& t, size_t from,
                      size_t to) {
  fmt::print("| {} | {} | {} | {} | {} | {} |\n", name,
             step_cell(t, from, to, [](const ReloadTiming& x) { return std::optional(x.wall_ms); }),
             step_cell(t, from, to, [](const ReloadTiming& x) { return x.request_to_exec_ms; }),
             step_cell(t, from, to, [](const ReloadTiming& x) { return x.exec_to_ready_ms; }),
             step_cell(t, from, to, [](const ReloadTiming& x) { return x.ready_to_drain_ms; }),
             step_cell(t, from, to, [](const ReloadTiming& x) { return x.drain_ms; }));
}

void print_timings(const SoakResult& r) {
  const auto& t = r.reloads;
  if (t.empty()) return;
  fmt::print("### Reload steps (ms, p50 / p99 / max)\n\n");
  fmt::print(
      "| reloads | `baton reload --wait` wall time | request → exec | exec → READY | READY → "
      "drain signal | drain (signal → old generation exited) |\n|:--|--:|--:|--:|--:|--:|\n");
  print_timing_row(fmt::format("all {}", t.size()), t, 0, t.size());
  if (t.size() >= 2 * kTrendReloads) {
    print_timing_row(fmt::format("first {}", kTrendReloads), t, 0, kTrendReloads);
    print_timing_row(fmt::format("last {}", kTrendReloads), t, t.size() - kTrendReloads, t.size());
  }
  fmt::print("\n");
}

/// `ok` is nullopt for a resource with no limit (shown for context).
void print_resource_row(const SoakResult& r, const std::string& name, const std::string& limit,
                        std::optional<bool> ok,
                        const std::function<int64_t(const ProcSample&)>& get) {
  const Peak p = peak(r, get);
  const std::string where =
      p.after_reload < 0 ? "at the end" : fmt::format("after reload {}", p.after_reload);
  fmt::print("| {} | {} | {} | {} ({}) | {} | {} |\n", name, get(start_of(r)),
             bold_if(!ok.value_or(true), std::to_string(get(r.end))), p.value, where, limit,
             !ok   ? ""
             : *ok ? "ok"
                   : "**FAILED**");
}

void print_rss_trajectory(const SoakResult& r) {
  const size_t n = r.samples.size();
  std::string points;
  for (size_t k = 0; k < kTrajectoryPoints && n > 0; ++k) {
    const size_t i = k * (n - 1) / (kTrajectoryPoints - 1);
    if (k > 0 && i == (k - 1) * (n - 1) / (kTrajectoryPoints - 1)) continue;
    points += fmt::format("{}{}: {}", points.empty() ? "" : ", ", r.samples[i].after_reload,
                          r.samples[i].proc.rss_anon_kib);
  }
  fmt::print("RssAnon (KiB) after reload N, over the run: {}; end (idle): {}.\n\n", points,
             r.end.rss_anon_kib);
}

/// The fds of the first sample above the start's count that the start did not have.
void print_excess_fds(const SoakResult& r) {
  if (r.excess_fd_samples == 0) return;
  fmt::print("{} of {} samples had more fds than the start", r.excess_fd_samples, r.samples.size());
  std::string extra;
  for (const auto& fd : r.first_excess_fds) {
    if (std::find(r.start_fds.begin(), r.start_fds.end(), fd) == r.start_fds.end()) {
      extra += fmt::format("{}`{}`", extra.empty() ? "" : ", ", fd);
    }
  }
  fmt::print("; the first of them had, beyond the start's: {}.\n\n",
             extra.empty() ? "(closed before they could be listed)" : extra);
}

void print_resources(const SoakResult& r) {
  if (r.samples.empty()) return;
  fmt::print("### baton's process\n\n");
  fmt::print(
      "*start*: before the first reload, under load; *end*: after the last reload, the load "
      "stopped and baton idle for 500 ms; *max*: over every sample and the end, with the first "
      "sample that reached it.\n\n");
  fmt::print("| resource | start | end | max | end must be | |\n|:--|--:|--:|--:|:--|:--|\n");
  print_resource_row(r, "open fds (/proc/PID/fd)", "= start", fds_ok(r),
                     [](const ProcSample& s) { return s.fds; });
  print_resource_row(r, "RssAnon (KiB)", fmt::format("≤ start + {} KiB", kRssAnonToleranceKib),
                     rss_ok(r), [](const ProcSample& s) { return s.rss_anon_kib; });
  print_resource_row(r, "zombie children (state Z)", "0", zombies_ok(r),
                     [](const ProcSample& s) { return s.zombies; });
  print_resource_row(r, "children (app processes)", "–", std::nullopt,
                     [](const ProcSample& s) { return s.children; });
  fmt::print("\n");
  print_excess_fds(r);
  print_rss_trajectory(r);
}

void print_checks(const std::vector<SoakCheck>& checks) {
  fmt::print("### Checks\n\n");
  for (const auto& c : checks) fmt::print("- {}: {}\n", c.ok ? "ok" : "**FAILED**", c.what);
  fmt::print("\n");
}

}  // namespace

std::vector<SoakCheck> soak_checks(const SoakResult& r) {
  const ProcSample& start = start_of(r);
  const ProcSample& end = r.end;
  const auto done = static_cast<int>(r.reloads.size());
  return {
      {fmt::format("failed requests: {} (must be 0)", total_failed(r)), total_failed(r) == 0},
      {fmt::format("reloads rolled back or refused: {} (must be 0)", r.reloads_failed),
       r.reloads_failed == 0},
      {fmt::format("reloads done: {} of {}", done, r.reloads_requested),
       done == r.reloads_requested},
      {fmt::format("baton's open fds: {} at start, {} at end (must be equal)", start.fds, end.fds),
       fds_ok(r)},
      {fmt::format("zombie children of baton at end: {} (must be 0)", end.zombies), zombies_ok(r)},
      {fmt::format("baton's RssAnon: {} KiB at start, {} KiB at end (must be ≤ start + {} KiB)",
                   start.rss_anon_kib, end.rss_anon_kib, kRssAnonToleranceKib),
       rss_ok(r)},
  };
}

void print_soak_report(const SoakResult& r, const std::vector<SoakCheck>& checks) {
  print_header(r);
  print_requests(r);
  print_reloads(r);
  print_timings(r);
  print_resources(r);
  print_checks(checks);
  std::fflush(stdout);
}

}  // namespace bench

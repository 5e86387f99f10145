// reload_bench's statistics and markdown tables (see report.h).
#include "report.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

namespace bench {
namespace {

using std::chrono::microseconds;

double nearest_rank(const std::vector<microseconds>& sorted, double p) {
  const auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::max<size_t>(rank, 1) - 1].count()) / 1000.0;
}

bool in_any(const std::vector<Window>& windows, std::chrono::steady_clock::time_point t) {
  return std::any_of(windows.begin(), windows.end(),
                     [t](const Window& w) { return t >= w.from && t <= w.to; });
}

std::string ms(double v) {
  if (v < 1) return fmt::format("{:.3f}", v);
  if (v < 10) return fmt::format("{:.2f}", v);
  if (v < 100) return fmt::format("{:.1f}", v);
  return fmt::format("{:.0f}", v);
}

std::string ratio(double num, double den) {
  return den > 0 && num > 0 ? fmt::format("{:.2f}", num / den) : "–";
}

const CaseResult* baseline_of(const std::vector<CaseResult>& cases, const std::string& mode) {
  for (const auto& c : cases) {
    if (c.baseline && c.mode == mode) return &c;
  }
  return nullptr;
}

std::string mode_title(const std::string& mode) {
  if (mode == "close") return "Mode `close`: a new TCP connection per request";
  if (mode == "shim") {
    return "Mode `shim`: examples/legacy (binds its own port) alone and under `baton run "
           "--shim`, a new TCP connection per request";
  }
  return "Mode `keepalive`: one connection per client thread, reused until the server closes it";
}

void print_case_row(const CaseResult& c, const CaseResult* base) {
  const double base_rps = base ? requests_per_second(*base) : 0;
  const double base_p99 = base ? base->steady.p99_ms : 0;
  const std::string window =
      c.window.count == 0 ? "–"
                          : fmt::format("{} ({} req)", latency_cell(c.window), c.window.count);
  const std::string p99 = fmt::format("{} / {}", ratio(c.steady.p99_ms, base_p99),
                                      c.window.count == 0 ? "–" : ratio(c.window.p99_ms, base_p99));
  fmt::print("| {} | {:.0f} | {} | {} | {} | {} | {} | {} |\n", c.name, requests_per_second(c),
             ratio(requests_per_second(c), base_rps), failures_cell(c), latency_cell(c.steady),
             window, p99, c.app_pids);
}

void print_mode_table(const std::string& mode, const std::vector<CaseResult>& cases) {
  fmt::print("### {}\n\n", mode_title(mode));
  fmt::print(
      "| case | req/s | req/s × baseline | failed | steady p50 / p99 / max | "
      "reload windows p50 / p99 / max | p99 × baseline (steady / windows) | app pids |\n");
  fmt::print("|:--|--:|--:|--:|--:|--:|--:|--:|\n");
  const CaseResult* base = baseline_of(cases, mode);
  for (const auto& c : cases) {
    if (c.mode == mode) print_case_row(c, base);
  }
  fmt::print("\n");
  if (mode != "shim") return;
  fmt::print(
      "*× baseline* here is legacy alone (binding 127.0.0.1:PORT itself, backlog 128); under "
      "the shim legacy's bind() gets baton's socket on the same address.\n\n");
  for (const auto& c : cases) {
    if (c.mode == mode && c.under_baton && c.failed > 0) {
      fmt::print("**FAILED REQUESTS UNDER THE SHIM: {} in \"{}\"** ({}); examples:\n\n", c.failed,
                 c.name, failures_cell(c));
      for (const auto& e : c.failure_examples) fmt::print("- `{}`\n", e);
      fmt::print("\n");
    }
  }
}

/// "median / max" of one step over the reloads ("–" if baton did not report it).
template <class Get>
std::string step_cell(const std::vector<ReloadTiming>& reloads, Get get) {
  std::vector<double> values;
  for (const auto& r : reloads) {
    if (auto v = get(r)) values.push_back(*v);
  }
  if (values.empty()) return "–";
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return fmt::format("{} / {}", step_ms_cell(median), step_ms_cell(values.back()));
}

void print_reload_table(const std::vector<CaseResult>& cases) {
  fmt::print("### Reload steps (median / max over the reloads, ms)\n\n");
  fmt::print(
      "| mode | case | reloads (done under load) | `baton reload` wall time | request → exec | "
      "exec → READY | READY → drain signal | drain (signal → old generation exited) |\n");
  fmt::print("|:--|:--|--:|--:|--:|--:|--:|--:|\n");
  for (const auto& c : cases) {
    if (c.reloads.empty()) continue;
    const auto& r = c.reloads;
    const auto under_load = std::count_if(r.begin(), r.end(), [](auto& t) { return t.under_load; });
    fmt::print("| {} | {} | {} ({}) | {} | {} | {} | {} | {} |\n", c.mode, c.name, r.size(),
               under_load,
               step_cell(r, [](const ReloadTiming& t) { return std::optional(t.wall_ms); }),
               step_cell(r, [](const ReloadTiming& t) { return t.request_to_exec_ms; }),
               step_cell(r, [](const ReloadTiming& t) { return t.exec_to_ready_ms; }),
               step_cell(r, [](const ReloadTiming& t) { return t.ready_to_drain_ms; }),
               step_cell(r, [](const ReloadTiming& t) { return t.drain_ms; }));
  }
  fmt::print("\n");
}

/// Reloads whose new generation took over a second longer than its boot delay
/// to send READY=1: it was starved of CPU (the old one kept serving meanwhile).
void print_slow_starts(const std::vector<CaseResult>& cases) {
  std::vector<std::string> notes;
  for (const auto& c : cases) {
    for (const auto& t : c.reloads) {
      if (!t.exec_to_ready_ms || *t.exec_to_ready_ms <= c.boot_delay_ms + 1000) continue;
      notes.push_back(
          fmt::format("- {} / {}: generation {} took {} ms from exec to READY=1 (boot "
                      "delay {} ms){}",
                      c.mode, c.name, t.generation, step_ms_cell(*t.exec_to_ready_ms),
                      c.boot_delay_ms, t.under_load ? "" : "; the load run ended first"));
    }
  }
  if (notes.empty()) return;
  fmt::print("### Slow starts\n\n");
  fmt::print("New generations that got little CPU while starting; the old one kept serving.\n\n");
  for (const auto& n : notes) fmt::print("{}\n", n);
  fmt::print("\n");
}

void print_failures(const std::vector<CaseResult>& cases) {
  bool any = false;
  for (const auto& c : cases) any = any || c.failed > 0;
  if (!any) return;
  fmt::print("### Failed requests\n\n");
  if (failed_under_baton(cases) > 0) {
    fmt::print(
        "**{} requests failed under baton.** Every request should succeed across reloads.\n\n",
        failed_under_baton(cases));
  }
  for (const auto& c : cases) {
    if (c.failed == 0) continue;
    fmt::print("- {} / {}: {}\n", c.mode, c.name, failures_cell(c));
    for (const auto& e : c.failure_examples) fmt::print("  - `{}`\n", e);
  }
  fmt::print("\n");
}

void print_header(const RunInfo& info) {
  fmt::print("## reload_bench\n\n");
  fmt::print(
      "{}; {} closed-loop client connections, {:g} s per case, {} reloads per reload case, "
      "all on loopback.\n\n",
      info.machine, info.connections, info.seconds_per_case, info.reloads);
  fmt::print(
      "Latencies are of successful requests, in ms. *Reload windows*: requests that started "
      "between a reload request and 500 ms after `baton reload` returned; *steady*: all the "
      "others. *× baseline*: ratio to the app alone (no baton: hello, or legacy in mode `shim`), "
      "same mode, same run.\n\n");
}

}  // namespace

std::string step_ms_cell(double v) {
  return v < 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.0f}", v);
}

double requests_per_second(const CaseResult& c) {
  return c.seconds > 0 ? static_cast<double>(c.ok) / c.seconds : 0;
}

std::string failures_cell(const CaseResult& c) {
  if (c.failed == 0) return "0";
  std::string kinds;
  for (const auto& [kind, n] : c.failures) {
    kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", load::to_string(kind), n);
  }
  return fmt::format("**{}** ({})", c.failed, kinds);
}

LatencySummary summarize_latencies(std::vector<microseconds> latencies) {
  LatencySummary s;
  s.count = latencies.size();
  if (latencies.empty()) return s;
  std::sort(latencies.begin(), latencies.end());
  s.min_ms = static_cast<double>(latencies.front().count()) / 1000.0;
  s.p50_ms = nearest_rank(latencies, 0.50);
  s.p90_ms = nearest_rank(latencies, 0.90);
  s.p99_ms = nearest_rank(latencies, 0.99);
  s.max_ms = static_cast<double>(latencies.back().count()) / 1000.0;
  return s;
}

std::string latency_cell(const LatencySummary& s) {
  if (s.count == 0) return "–";
  return fmt::format("{} / {} / {}", ms(s.p50_ms), ms(s.p99_ms), ms(s.max_ms));
}

std::string distribution_cell(const LatencySummary& s) {
  if (s.count == 0) return "–";
  return fmt::format("{} / {} / {} / {}", ms(s.min_ms), ms(s.p50_ms), ms(s.p90_ms), ms(s.max_ms));
}

CaseResult summarize_case(std::string mode, std::string name, load::LoadResult&& load,
                          const std::vector<Window>& windows) {
  CaseResult c;
  c.mode = std::move(mode);
  c.name = std::move(name);
  c.seconds = static_cast<double>(load.elapsed.count()) / 1000.0;
  c.ok = load.ok;
  c.failed = load.failed();
  c.failures = load.failures;
  c.failure_examples = load.failure_examples;
  c.app_pids = load.pids.size();
  std::vector<microseconds> steady, window;
  for (const auto& s : load.samples) {
    if (!s.ok) continue;
    (in_any(windows, s.start) ? window : steady).push_back(s.latency);
  }
  c.steady = summarize_latencies(std::move(steady));
  c.window = summarize_latencies(std::move(window));
  return c;
}

std::string machine_description() {
  utsname u{};
  uname(&u);
  return fmt::format("{} CPUs, {} {}", std::thread::hardware_concurrency(), u.sysname, u.release);
}

uint64_t failed_under_baton(const std::vector<CaseResult>& cases) {
  uint64_t n = 0;
  for (const auto& c : cases) n += c.under_baton ? c.failed : 0;
  return n;
}

void print_report(const RunInfo& info, const std::vector<CaseResult>& cases) {
  print_header(info);
  std::vector<std::string> modes;
  for (const auto& c : cases) {
    if (std::find(modes.begin(), modes.end(), c.mode) == modes.end()) modes.push_back(c.mode);
  }
  for (const auto& mode : modes) print_mode_table(mode, cases);
  if (std::any_of(cases.begin(), cases.end(), [](auto& c) { return !c.reloads.empty(); })) {
    print_reload_table(cases);
  }
  print_slow_starts(cases);
  print_failures(cases);
  std::fflush(stdout);
}

}  // namespace bench

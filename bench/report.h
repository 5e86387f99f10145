// Results of reload_bench's cases and their markdown report: throughput,
// failures by kind, latency percentiles inside and outside reload windows,
// per-step reload timings, and ratios against the same run's baseline; and
// the percentile and machine helpers the soak report shares.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "load_client.h"

namespace bench {

/// Latency percentiles of a set of requests (nearest rank), in milliseconds.
struct LatencySummary {
  size_t count = 0;
  double min_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
};

/// Nearest-rank p50, p90 and p99, and the minimum and maximum, of `latencies`.
LatencySummary summarize_latencies(std::vector<std::chrono::microseconds> latencies);

/// "p50 / p99 / max" in ms, with precision by magnitude; "–" if there are none.
std::string latency_cell(const LatencySummary& s);

/// "min / p50 / p90 / max" in ms, likewise: a distribution of a few samples.
std::string distribution_cell(const LatencySummary& s);

/// From the reload request until shortly after `baton reload` returned.
struct Window {
  std::chrono::steady_clock::time_point from, to;
};

/// One `baton reload`, as measured by the bench and reported by baton.
struct ReloadTiming {
  std::chrono::steady_clock::time_point requested, returned;
  double wall_ms = 0;       // `baton reload` run time, from just before fork to exit
  bool under_load = false;  // `baton reload` returned before the load run ended
  int generation = 0;
  int pid = 0;
  // From `baton status --json` (last_reload) once the old generation exited.
  std::optional<double> request_to_exec_ms, exec_to_ready_ms, ready_to_drain_ms, drain_ms;
};

/// Everything reported about one case.
struct CaseResult {
  std::string mode;  // "close" or "keepalive"
  std::string name;
  bool baseline = false;
  bool under_baton = false;
  int boot_delay_ms = 0;  // HELLO_BOOT_DELAY_MS of every generation
  double seconds = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::map<load::Failure, uint64_t> failures;
  std::vector<std::string> failure_examples;
  size_t app_pids = 0;  // distinct server pids that answered
  LatencySummary steady, window;
  std::vector<ReloadTiming> reloads;
  std::vector<double> slice_rps;  // mode checked: req/s of each alternating slice
};

/// Builds a case's result from its load run and reload windows.
CaseResult summarize_case(std::string mode, std::string name, load::LoadResult&& load,
                          const std::vector<Window>& windows);

/// Table cells shared with the checked mode's report (checked_report.h):
/// baton's whole-millisecond step timings; successful responses per
/// second; failed requests with their kinds ("0" if none).
std::string step_ms_cell(double v);
double requests_per_second(const CaseResult& c);
std::string failures_cell(const CaseResult& c);

/// "2 CPUs, Linux 6.1.0": the CPU count and kernel, for report headers.
std::string machine_description();

/// What the report header says about the run.
struct RunInfo {
  std::string machine;  // e.g. "2 CPUs, Linux 6.1.0"
  double seconds_per_case = 0;
  int connections = 0;
  int reloads = 0;
};

/// Prints the header and the markdown tables of `cases` to stdout (the
/// reload steps only if some case reloaded).
void print_report(const RunInfo& info, const std::vector<CaseResult>& cases);

/// Requests that failed in cases run under baton (they should be zero).
uint64_t failed_under_baton(const std::vector<CaseResult>& cases);

}  // namespace bench

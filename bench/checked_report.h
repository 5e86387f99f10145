// reload_bench's mode "checked": the results of its three measurements of
// checked deploys (readiness probes, per-generation listeners with their
// reuseport steering program) and their markdown tables, each ending in
// whether the claim it measures held in this run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report.h"

namespace bench {

/// One reload of the probed hello (claim 1).
struct ProbedReload {
  ReloadTiming timing;
  /// Probe attempts `baton reload` printed ("http /healthz: 503 in 0ms
  /// (attempt N)" lines), the passing one included.
  int attempts = 0;
  /// The last attempt's own time as baton printed it ("200 in 1ms": 1).
  std::optional<int> last_attempt_ms;
};

/// Everything mode "checked" measured.
struct CheckedResult {
  // Claim 1: exec → ready of a probed app is its boot time plus at most one
  // probe interval, plus an allowance (see checked_report.cc).
  int interval_ms = 0;  // `[ready] interval`
  int boot_ms = 0;      // HELLO_HEALTH_FAIL_MS of every generation
  int slack_ms = 0;     // baton's whole-millisecond timings and timers
  /// hello's own start, measured in the same run: exec → READY=1 of each
  /// reload of a hello that sends READY=1 at once (no probe, no boot delay).
  std::vector<double> start_ms;
  LatencySummary healthz;  // GET /healthz round trips to the serving generation
  std::vector<ProbedReload> reloads;
  // Claim 2: per-generation listeners (steering program) against shared
  // ones (baseline), a new connection per request, alternating slices.
  std::vector<CaseResult> steering;
  // Claim 3: hello alone (baseline) against hello under baton with the
  // probe config, per load mode ("close", "keepalive"), alternating slices.
  std::vector<CaseResult> overhead;
};

/// Prints the checked mode's tables and verdicts to stdout.
void print_checked_report(const CheckedResult& r);

/// Requests that failed under baton in the checked cases (they should be zero).
uint64_t failed_under_baton(const CheckedResult& r);

}  // namespace bench

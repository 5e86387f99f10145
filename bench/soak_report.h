// What the soak benchmark measured and its markdown report: requests and
// failures per load mode, reloads done and rolled back, baton's own fds,
// RssAnon and zombie children at start, end and max, reload timings early
// and late in the run, and the pass/fail checks that set the exit status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "load_client.h"
#include "proc_stats.h"
#include "report.h"

namespace bench {

/// RssAnon may end this much above its start and still pass (see README.md).
/// The first reloads grow glibc's heap and baton's long-lived buffers once
/// (56-80 KiB in the runs measured); on top of that, a leak of about 180-200
/// bytes per reload would exceed it over 1,000 reloads.
constexpr int64_t kRssAnonToleranceKib = 256;

/// One of the concurrent load runs.
struct SoakLoad {
  std::string mode;  // "close" or "keepalive"
  int connections = 0;
  load::LoadResult result;
};

/// baton's resources after reload `after_reload` (0: before the first).
struct SoakSample {
  int after_reload = 0;
  ProcSample proc;
};

/// Everything the soak run measured.
struct SoakResult {
  std::string machine;
  int reloads_requested = 0;
  int sample_every = 1;
  std::vector<SoakLoad> loads;
  /// Reloads that completed (`baton reload --wait` exit 0), in order.
  std::vector<ReloadTiming> reloads;
  /// Reloads refused or rolled back (exit 1), and the first few messages.
  int reloads_failed = 0;
  std::vector<std::string> reload_failures;
  /// Set if the run stopped before `reloads_requested` (time limit).
  std::string stopped_early;
  /// start: before the first reload; then after every sample_every-th
  /// reload; the last is `end` (the load stopped, baton idle for a moment).
  std::vector<SoakSample> samples;
  ProcSample end;
  /// baton's fds at the start sample, and at the first sample with more
  /// (empty if none had more): what the extra fds were.
  std::vector<std::string> start_fds, first_excess_fds;
  int excess_fd_samples = 0;       // samples with more fds than the start
  double reload_loop_seconds = 0;  // first reload requested -> last one drained
  double total_seconds = 0;        // program start -> baton stopped
  size_t app_pids = 0;             // distinct app pids that answered requests
};

/// One pass/fail criterion and how the run did against it.
struct SoakCheck {
  std::string what;
  bool ok = false;
};

/// The criteria: no failed request, no failed reload, every reload done,
/// fds back to the start, no zombie at the end, RssAnon within tolerance.
std::vector<SoakCheck> soak_checks(const SoakResult& r);

/// Prints the tables to stdout.
void print_soak_report(const SoakResult& r, const std::vector<SoakCheck>& checks);

}  // namespace bench

// Counters: what baton has done since it started, for `baton metrics`
// (Prometheus text format). The lifecycle counts at the moment it decides
// (a reload's end, a restart, a failed probe attempt, a drain's end);
// gauges come from the status snapshot.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace baton {

/// A Prometheus histogram of durations, in seconds, with fixed buckets.
struct DurationHistogram {
  static constexpr std::array<double, 13> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,     10,   30,  60};
  /// Observations at or below each bucket's bound (not cumulative).
  std::array<uint64_t, kBuckets.size() + 1> counts{};
  uint64_t count = 0;
  double sum = 0;

  void observe(double seconds);
};

/// Seconds from `from` to `to`, when both are set and in order.
template <typename TimePoint>
std::optional<double> seconds_between(TimePoint from, TimePoint to) {
  if (from == TimePoint{} || to == TimePoint{} || to < from) return std::nullopt;
  return std::chrono::duration<double>(to - from).count();
}

struct Counters {
  /// Reloads by result: "ok", "rolled_back", "refused", "aborted".
  std::map<std::string, uint64_t> reloads;
  /// `baton rollback` requests by kind: "canary", "standby", "release".
  std::map<std::string, uint64_t> rollbacks;
  /// Instances started again after an unexpected exit, over all generations.
  uint64_t restarts = 0;
  /// Failed readiness probe attempts, by probe ("http", "tcp", "exec").
  std::map<std::string, uint64_t> probe_failures;
  /// The steps of reloads that committed: request to exec, exec to ready,
  /// ready to drain signal.
  DurationHistogram request_to_exec, exec_to_ready, ready_to_drain;
  /// A replaced generation's drain: drain signal to its last instance's exit.
  DurationHistogram drain;

  /// A reload ended with `result` ("rolled back" is counted as rolled_back).
  void reload_ended(std::string result);
};

struct StatusSnapshot;

/// The Prometheus text exposition of `counters` and the gauges of `status`;
/// `dropped_stderr` and `dropped_followers` are the log lines lost so far.
std::string metrics_text(const StatusSnapshot& status, uint64_t dropped_stderr,
                         uint64_t dropped_followers);

}  // namespace baton

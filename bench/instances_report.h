// reload_bench's mode "instances": the results of its two measurements of
// several instances and the warm standby (README.md of the project,
// "Several instances" and "Rollback: a warm standby, or the previous
// release") and their markdown tables.
#pragma once

#include <string>
#include <vector>

#include "report.h"

namespace bench {

/// One `baton rollback` to a warm standby (measurement 2).
struct StandbyRollback {
  int standby_generation = 0;   // the generation rolled back to
  int replaced_generation = 0;  // the one the reload had started, which drains
  int standby_pid = 0;          // its instance's pid
  /// From just before `baton rollback` was started: until the first
  /// response from the standby's pid arrived; until the command exited.
  double first_response_ms = 0;
  double command_ms = 0;
  int other_responses = 0;  // responses from other pids before the first from the standby
  int failed = 0;           // connections that got no response meanwhile
  std::vector<std::string> failure_examples;
};

/// Everything mode "instances" measured.
struct InstancesResult {
  // 1. Rolling reloads: `instances` instances, max_surge `max_surge`, with
  // rolling reloads during the measured side's slices, against the same
  // service without reloads (the baseline), per load mode. The measured
  // cases carry their reloads.
  int instances = 0;
  int max_surge = 0;
  std::vector<CaseResult> rolling;
  // 2. `standby = standby_window`, one instance: a reload, then a rollback
  // to the standby, again and again.
  std::string standby_window;
  std::vector<StandbyRollback> rollbacks;
};

/// Prints the instances mode's tables and verdicts to stdout.
void print_instances_report(const InstancesResult& r);

/// Requests that failed under baton in mode instances (they should be zero):
/// the pairs' load and the connections made during the rollbacks.
uint64_t failed_under_baton(const InstancesResult& r);

}  // namespace bench

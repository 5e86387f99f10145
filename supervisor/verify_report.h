// What `baton verify` found, and its report for people: requests and
// failures by kind, each reload's window and result, requests per
// generation, and latency inside and outside the reload windows. Pure (no
// I/O), so that the arithmetic and the wording are unit-tested.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "load_client.h"

namespace baton {

/// One reload verify asked for: from its request to baton's answer.
struct ReloadWindow {
  std::chrono::steady_clock::time_point sent, answered;
  bool ok = false;
  /// Why it failed (baton's error, or why baton could not be asked); "" if ok.
  std::string error;
  /// What baton said besides, e.g. that the new generation is a canary.
  std::string note;
  /// The generation that serves after it, and its pid (0 if not known).
  int generation = 0;
  pid_t pid = 0;
};

/// The report's failure kinds, as load::Failure is folded into them.
enum class VerifyFailure { kRefused, kReset, kTimeout, kHung, kNon2xx, kInvalid, kOther };

/// "refused", "reset", "timeout", "hung", "non-2xx", "invalid", "other".
const char* verify_failure_name(VerifyFailure kind);

/// The report's kind of a load client failure: a reset or EOF part way
/// through a response (short_response) is a reset too.
VerifyFailure verify_failure_of(load::Failure failure);

/// Percentiles of some latencies (nearest rank). All zero if count is 0.
struct LatencySummary {
  uint64_t count = 0;
  std::chrono::microseconds p50{0}, p90{0}, p99{0}, max{0};
};

/// Summarises `latencies` (sorted here; taken by value).
LatencySummary summarise(std::vector<std::chrono::microseconds> latencies);

/// Everything the report is made of.
struct VerifyOutcome {
  /// The address loaded and how ("8 connections, a new connection per request").
  std::string address, load_shape;
  load::LoadResult load;
  std::vector<ReloadWindow> reloads;
  /// Every pid baton reported as an instance during the run -> its generation.
  std::map<pid_t, int> generations;
};

/// Whether verify passes: not one failed request, every reload ok.
bool verify_passed(const VerifyOutcome& outcome);

/// The report: a summary line, then failures by kind with the first few
/// examples, the reloads, requests per generation and the latencies.
std::string format_verify_report(const VerifyOutcome& outcome);

/// 48213 -> "48,213".
std::string group_thousands(uint64_t n);

}  // namespace baton

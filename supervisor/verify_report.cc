// `baton verify`'s report (verify_report.h).
#include "verify_report.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace baton {
namespace {

using Micros = std::chrono::microseconds;

constexpr std::array<VerifyFailure, 7> kVerifyFailures = {
    VerifyFailure::kRefused, VerifyFailure::kReset,   VerifyFailure::kTimeout, VerifyFailure::kHung,
    VerifyFailure::kNon2xx,  VerifyFailure::kInvalid, VerifyFailure::kOther};

/// "0.21ms", "12.3ms", "250ms", "1.25s".
std::string latency_text(Micros d) {
  const double ms = static_cast<double>(d.count()) / 1000.0;
  if (ms < 10) return fmt::format("{:.2f}ms", ms);
  if (ms < 100) return fmt::format("{:.1f}ms", ms);
  if (ms < 1000) return fmt::format("{:.0f}ms", ms);
  return fmt::format("{:.2f}s", ms / 1000.0);
}

/// Seconds since the load started: "+2.50s".
std::string offset_text(const VerifyOutcome& o, std::chrono::steady_clock::time_point t) {
  return fmt::format("+{:.2f}s", std::chrono::duration<double>(t - o.load.started).count());
}

std::map<VerifyFailure, uint64_t> failures_by_kind(const load::LoadResult& r) {
  std::map<VerifyFailure, uint64_t> by_kind;
  for (const auto& [failure, n] : r.failures) by_kind[verify_failure_of(failure)] += n;
  return by_kind;
}

std::string summary_line(const VerifyOutcome& o) {
  const auto failed_reloads = std::count_if(o.reloads.begin(), o.reloads.end(),
                                            [](const ReloadWindow& w) { return !w.ok; });
  const std::string reloads =
      o.reloads.empty() ? "0 reloads"
      : failed_reloads > 0
          ? fmt::format("{} reload{} ({} failed)", o.reloads.size(),
                        o.reloads.size() == 1 ? "" : "s", failed_reloads)
          : fmt::format("{} reload{} (all ok)", o.reloads.size(), o.reloads.size() == 1 ? "" : "s");
  const uint64_t failed = o.load.failed();
  std::string line = fmt::format("verify: {}, {} requests, {} failed", reloads,
                                 group_thousands(o.load.ok + failed), group_thousands(failed));
  if (failed == 0) return line + "\n";
  const auto by_kind = failures_by_kind(o.load);
  std::vector<std::string> kinds;
  for (VerifyFailure kind : kVerifyFailures) {
    const auto it = by_kind.find(kind);
    kinds.push_back(fmt::format("{} {}", verify_failure_name(kind),
                                group_thousands(it == by_kind.end() ? 0 : it->second)));
  }
  return fmt::format("{}: {}\n", line, fmt::join(kinds, ", "));
}

std::string examples_text(const load::LoadResult& r) {
  if (r.failure_examples.empty()) return "";
  std::string out = "first failures:\n";
  for (const auto& e : r.failure_examples) out += fmt::format("  {}\n", e);
  return out;
}

std::string reloads_text(const VerifyOutcome& o) {
  if (o.reloads.empty()) return "";
  std::string out = "reloads:\n";
  for (size_t i = 0; i < o.reloads.size(); ++i) {
    const ReloadWindow& w = o.reloads[i];
    const auto took = std::chrono::duration_cast<Micros>(w.answered - w.sent);
    std::string result = w.ok ? fmt::format("ok after {}, generation {} (pid {}) serving",
                                            latency_text(took), w.generation, w.pid) +
                                    (w.note.empty() ? "" : fmt::format(" ({})", w.note))
                              : fmt::format("FAILED after {}: {}", latency_text(took), w.error);
    out += fmt::format("  {} at {}: {}\n", i + 1, offset_text(o, w.sent), result);
  }
  return out;
}

std::string generations_text(const VerifyOutcome& o) {
  const auto& pids = o.load.pids;
  if (pids.empty()) return "";
  if (pids.size() == 1 && pids.begin()->first == 0) {
    return "served by: not known: the responses do not name the pid that served them "
           "(examples/hello's say \"pid N\")\n";
  }
  std::map<int, std::vector<std::string>> by_generation;  // 0: not an instance baton reported
  for (const auto& [pid, n] : pids) {
    const auto it = o.generations.find(pid);
    const int generation = pid == 0 || it == o.generations.end() ? 0 : it->second;
    by_generation[generation].push_back(pid == 0
                                            ? fmt::format("{} naming no pid", group_thousands(n))
                                            : fmt::format("pid {} {}", pid, group_thousands(n)));
  }
  std::string out = "served by:\n";
  for (const auto& [generation, parts] : by_generation) {
    if (generation != 0)
      out += fmt::format("  generation {}: {}\n", generation, fmt::join(parts, ", "));
  }
  if (by_generation.contains(0)) {
    out += fmt::format("  not a baton instance: {}\n", fmt::join(by_generation[0], ", "));
  }
  return out;
}

/// Requests (ok or failed) whose start falls in one of `windows` if
/// `inside`, else in none; their 2xx latencies and failures.
struct WindowSplit {
  uint64_t requests = 0, failed = 0;
  std::vector<Micros> ok_latencies;
};

std::array<WindowSplit, 2> split_by_windows(const VerifyOutcome& o) {
  std::array<WindowSplit, 2> split;  // [0] outside, [1] inside
  size_t w = 0;                      // the first window that has not ended before this sample
  for (const load::Sample& s : o.load.samples) {
    while (w < o.reloads.size() && o.reloads[w].answered < s.start) ++w;
    const bool inside = w < o.reloads.size() && o.reloads[w].sent <= s.start;
    WindowSplit& part = split[inside ? 1 : 0];
    ++part.requests;
    if (s.ok) {
      part.ok_latencies.push_back(s.latency);
    } else {
      ++part.failed;
    }
  }
  return split;
}

std::string latency_line(const char* label, const WindowSplit& part) {
  const LatencySummary l = summarise(part.ok_latencies);
  const std::string counts = fmt::format("{} requests, {} failed", group_thousands(part.requests),
                                         group_thousands(part.failed));
  if (l.count == 0) return fmt::format("  {:<22} {}\n", label, counts);
  return fmt::format("  {:<22} {:<31} p50 {}  p90 {}  p99 {}  max {}\n", label, counts,
                     latency_text(l.p50), latency_text(l.p90), latency_text(l.p99),
                     latency_text(l.max));
}

std::string latencies_text(const VerifyOutcome& o) {
  if (o.load.samples.empty()) return "";
  const auto split = split_by_windows(o);
  std::string out = "latency of 2xx responses:\n";
  if (!o.reloads.empty()) out += latency_line("inside reload windows", split[1]);
  out += latency_line(o.reloads.empty() ? "all requests" : "outside", split[0]);
  return out;
}

}  // namespace

const char* verify_failure_name(VerifyFailure kind) {
  switch (kind) {
    case VerifyFailure::kRefused:
      return "refused";
    case VerifyFailure::kReset:
      return "reset";
    case VerifyFailure::kTimeout:
      return "timeout";
    case VerifyFailure::kHung:
      return "hung";
    case VerifyFailure::kNon2xx:
      return "non-2xx";
    case VerifyFailure::kInvalid:
      return "invalid";
    case VerifyFailure::kOther:
      return "other";
  }
  return "other";
}

VerifyFailure verify_failure_of(load::Failure failure) {
  switch (failure) {
    case load::Failure::kRefused:
      return VerifyFailure::kRefused;
    case load::Failure::kReset:
    case load::Failure::kShortResponse:
      return VerifyFailure::kReset;
    case load::Failure::kTimeout:
      return VerifyFailure::kTimeout;
    case load::Failure::kHung:
      return VerifyFailure::kHung;
    case load::Failure::kNon2xx:
      return VerifyFailure::kNon2xx;
    case load::Failure::kInvalidResponse:
      return VerifyFailure::kInvalid;
    case load::Failure::kOther:
      return VerifyFailure::kOther;
  }
  return VerifyFailure::kOther;
}

LatencySummary summarise(std::vector<Micros> latencies) {
  LatencySummary s;
  s.count = latencies.size();
  if (latencies.empty()) return s;
  std::sort(latencies.begin(), latencies.end());
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  auto rank = [&](int p) {
    const size_t r = (latencies.size() * static_cast<size_t>(p) + 99) / 100;
    return latencies[std::max<size_t>(r, 1) - 1];
  };
  s.p50 = rank(50);
  s.p90 = rank(90);
  s.p99 = rank(99);
  s.max = latencies.back();
  return s;
}

bool verify_passed(const VerifyOutcome& o) {
  return o.load.failed() == 0 && std::all_of(o.reloads.begin(), o.reloads.end(),
                                             [](const ReloadWindow& w) { return w.ok; });
}

std::string format_verify_report(const VerifyOutcome& o) {
  std::string out =
      fmt::format("verify: {:.1f}s at {} ({})\n",
                  std::chrono::duration<double>(o.load.elapsed).count(), o.address, o.load_shape);
  out += summary_line(o);
  out += examples_text(o.load);
  out += reloads_text(o);
  out += generations_text(o);
  out += latencies_text(o);
  return out;
}

std::string group_thousands(uint64_t n) {
  std::string digits = std::to_string(n);
  for (size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

}  // namespace baton

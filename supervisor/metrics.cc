// `baton metrics`: counters and gauges in Prometheus text format (version
// 0.0.4), the format node_exporter's textfile collector reads too.
#include "metrics.h"

#include <fmt/format.h>

#include "report.h"

namespace baton {
namespace {

/// A label value with \, " and newlines escaped.
std::string escaped(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

/// The HELP and TYPE lines of a metric.
void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void counter_by(std::string& out, std::string_view name, std::string_view label,
                const std::map<std::string, uint64_t>& values,
                std::initializer_list<std::string_view> always, std::string_view help) {
  header(out, name, "counter", help);
  std::map<std::string, uint64_t> all = values;
  for (std::string_view key : always) all.try_emplace(std::string(key), 0);
  for (const auto& [key, n] : all) {
    out += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, escaped(key), n);
  }
}

void histogram(std::string& out, std::string_view name, std::string_view labels,
               const DurationHistogram& h) {
  uint64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < DurationHistogram::kBuckets.size(); ++i) {
    cumulative += h.counts[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep,
                       DurationHistogram::kBuckets[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, h.count);
  std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, h.sum, name, braces, h.count);
}

void gauges(std::string& out, const StatusSnapshot& s) {
  header(out, "baton_up_seconds", "gauge", "Seconds since baton started.");
  out += fmt::format("baton_up_seconds {:.3f}\n",
                     std::chrono::duration<double>(s.now - s.started_at).count());
  header(out, "baton_generation", "gauge", "The serving generation's number.");
  out += fmt::format("baton_generation {}\n", s.generation);
  header(out, "baton_instances", "gauge",
         "App processes by state (every generation); wanted: the serving generation's "
         "instances setting.");
  std::map<std::string, int> by_state = {{"starting", 0}, {"ready", 0}, {"draining", 0}};
  for (const InstanceView& i : s.instances) by_state[std::string(public_state(i.state))]++;
  for (const auto& [state, n] : by_state) {
    out += fmt::format("baton_instances{{state=\"{}\"}} {}\n", state, n);
  }
  out += fmt::format("baton_instances{{state=\"wanted\"}} {}\n", s.instances_wanted);
  header(out, "baton_reload_in_progress", "gauge", "1 while a reload (or a canary) is on.");
  out += fmt::format("baton_reload_in_progress {}\n", s.reloading ? 1 : 0);
  header(out, "baton_candidate_share_ratio", "gauge",
         "The share of new connections the reload's candidate gets (rolling step, canary).");
  out += fmt::format("baton_candidate_share_ratio {}\n", s.candidate_share / 10000.0);
  header(out, "baton_standby", "gauge", "1 while a warm standby is kept.");
  out += fmt::format("baton_standby {}\n", s.standby ? 1 : 0);
}

}  // namespace

void DurationHistogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  counts[i]++;
  count++;
  sum += seconds;
}

void Counters::reload_ended(std::string result) {
  std::replace(result.begin(), result.end(), ' ', '_');
  reloads[result]++;
}

std::string metrics_text(const StatusSnapshot& s, uint64_t dropped_stderr,
                         uint64_t dropped_followers) {
  const Counters& c = s.counters;
  std::string out;
  header(out, "baton_info", "gauge", "The service baton runs (always 1).");
  out += fmt::format("baton_info{{service=\"{}\"}} 1\n", escaped(s.name));
  gauges(out, s);
  counter_by(out, "baton_reloads_total", "result", c.reloads,
             {"ok", "rolled_back", "refused", "aborted"},
             "Reloads by how they ended (a canary rolled back by itself: rolled_back).");
  counter_by(out, "baton_rollbacks_total", "kind", c.rollbacks, {"canary", "standby", "release"},
             "baton rollback requests by what they rolled back: a canary, to the warm standby, "
             "to the previous release.");
  header(out, "baton_restarts_total", "counter",
         "App instances started again after an unexpected exit.");
  out += fmt::format("baton_restarts_total {}\n", c.restarts);
  counter_by(out, "baton_probe_failures_total", "probe", c.probe_failures, {"http", "tcp", "exec"},
             "Failed readiness probe attempts.");
  header(out, "baton_reload_step_seconds", "histogram",
         "Steps of reloads that committed: request to exec, exec to ready, ready to drain signal.");
  histogram(out, "baton_reload_step_seconds", "step=\"exec\"", c.request_to_exec);
  histogram(out, "baton_reload_step_seconds", "step=\"ready\"", c.exec_to_ready);
  histogram(out, "baton_reload_step_seconds", "step=\"drain_signal\"", c.ready_to_drain);
  header(out, "baton_drain_seconds", "histogram",
         "A replaced generation's drain: from the drain signal to its last instance's exit.");
  histogram(out, "baton_drain_seconds", "", c.drain);
  header(out, "baton_log_lines_dropped_total", "counter",
         "Log lines lost: stderr was not keeping up, or a `baton logs` reader was not.");
  out += fmt::format("baton_log_lines_dropped_total{{reader=\"stderr\"}} {}\n", dropped_stderr);
  out +=
      fmt::format("baton_log_lines_dropped_total{{reader=\"follower\"}} {}\n", dropped_followers);
  return out;
}

}  // namespace baton

// metrics_text: the Prometheus exposition of baton's counters and gauges.
#include "metrics.h"

#include <doctest/doctest.h>

#include "report.h"

using namespace baton;

TEST_CASE("metrics: histogram buckets are cumulative in the text, with +Inf, sum and count") {
  StatusSnapshot s;
  s.name = "web";
  s.generation = 3;
  s.counters.reload_ended("ok");
  s.counters.reload_ended("rolled back");
  s.counters.reload_ended("rolled back");
  s.counters.restarts = 4;
  s.counters.probe_failures["http"] = 2;
  s.counters.drain.observe(0.004);
  s.counters.drain.observe(0.2);
  s.counters.drain.observe(120);
  InstanceView ready;
  ready.state = InstanceState::kReady;
  s.instances = {ready, ready};
  std::string text = metrics_text(s, 5, 6);
  CAPTURE(text);
  for (const char* expected : {
           "baton_info{service=\"web\"} 1\n",
           "baton_generation 3\n",
           "baton_instances{state=\"ready\"} 2\n",
           "baton_instances{state=\"starting\"} 0\n",
           "baton_reloads_total{result=\"ok\"} 1\n",
           "baton_reloads_total{result=\"rolled_back\"} 2\n",
           "baton_reloads_total{result=\"refused\"} 0\n",
           "baton_restarts_total 4\n",
           "baton_probe_failures_total{probe=\"http\"} 2\n",
           "baton_probe_failures_total{probe=\"tcp\"} 0\n",
           "baton_drain_seconds_bucket{le=\"0.005\"} 1\n",
           "baton_drain_seconds_bucket{le=\"0.1\"} 1\n",
           "baton_drain_seconds_bucket{le=\"0.25\"} 2\n",
           "baton_drain_seconds_bucket{le=\"60\"} 2\n",
           "baton_drain_seconds_bucket{le=\"+Inf\"} 3\n",
           "baton_drain_seconds_count 3\n",
           "baton_reload_step_seconds_count{step=\"exec\"} 0\n",
           "baton_log_lines_dropped_total{reader=\"stderr\"} 5\n",
           "baton_log_lines_dropped_total{reader=\"follower\"} 6\n",
           "# TYPE baton_drain_seconds histogram\n",
       }) {
    CHECK(text.find(expected) != std::string::npos);
  }
}

TEST_CASE("metrics: label values are escaped") {
  StatusSnapshot s;
  s.name = "a\"b\\c\nd";
  CHECK(metrics_text(s, 0, 0).find("baton_info{service=\"a\\\"b\\\\c\\nd\"} 1\n") !=
        std::string::npos);
}

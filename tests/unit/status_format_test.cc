// `baton status` as people read it: the tables format_status lays out from
// the JSON of `status --json`.
#include "status_format.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using baton::format_status;
using nlohmann::json;

namespace {

json instance(int generation, int number, int pid, const char* state, int64_t up_ms) {
  return {
      {"generation", generation}, {"instance", number}, {"pid", pid},   {"state", state},
      {"substate", state},        {"uptime_ms", up_ms}, {"status", ""}, {"ready_after_ms", 180}};
}

/// A service serving generation 1 with one instance, no reload yet.
json serving() {
  return {{"name", "hello"},
          {"pid", 4100},
          {"state", "running"},
          {"uptime_ms", 303'000},
          {"control", "/run/baton/hello.sock"},
          {"generation", 1},
          {"restarts", 0},
          {"reloads", 0},
          {"wanted_instances", 1},
          {"ready_instances", 1},
          {"reloading", nullptr},
          {"reload_step", nullptr},
          {"sockets", json::array({{{"name", "http"},
                                    {"url", "tcp://127.0.0.1:8080"},
                                    {"kind", "tcp"},
                                    {"address", "127.0.0.1:8080"},
                                    {"listeners", "per-generation"}}})},
          {"instances", json::array({instance(1, 1, 4312, "ready", 241'000)})},
          {"last_reload", nullptr},
          {"recent_reloads", json::array()},
          {"consecutive_failures", 0},
          {"last_exit", nullptr},
          {"next_start_in_ms", nullptr},
          {"release", {{"generation", 1}, {"executable", ""}, {"working_directory", ""}}},
          {"rollback_to", json::array()},
          {"standby", nullptr},
          {"canary", nullptr},
          {"candidate", nullptr},
          {"restarting", json::array()}};
}

json reload(const char* result, int from, int to, int64_t ago_ms) {
  bool ok = std::string_view(result) == "ok";
  return {{"generation", to},
          {"replaced_generation", from},
          {"pid", 4400},
          {"replaced_pid", 4312},
          {"result", result},
          {"error", ok ? "" : "generation 2 pid 4400 exited with status 3 before READY=1"},
          {"ago_ms", ago_ms},
          {"request_to_exec_ms", 2},
          {"exec_to_ready_ms", 180},
          {"ready_to_drain_ms", ok ? json(35) : json(nullptr)},
          {"drain_ms", ok ? json(1'200) : json(nullptr)},
          {"drain_result", ok ? "exited with status 0 after draining for 1.2s" : ""}};
}

/// What format_status(serving()) starts with: baton, the serving generation
/// and the sockets.
const std::string kServingHead =
    "baton hello (pid 4100) running, up 5m3s, control /run/baton/hello.sock\n"
    "serving: generation 1, 1 of 1 instance ready, 0 restarts\n"
    "\n"
    "SOCKET  URL                   BOUND           LISTENERS\n"
    "http    tcp://127.0.0.1:8080  127.0.0.1:8080  per-generation\n"
    "\n";

}  // namespace

TEST_CASE("status: a service with no reload yet") {
  CHECK(format_status(serving()) == kServingHead +
                                        "GEN  ROLE     PID   STATE  UP    READY AFTER  STATUS\n"
                                        "1    serving  4312  ready  4m1s  180ms\n"
                                        "\n"
                                        "reloads: 0\n");
}

TEST_CASE("status: a reload's candidate with its checks, and the last reloads") {
  json s = serving();
  s["reloads"] = 1;
  s["reloading"] = 3;
  s["reload_step"] = "smoke";
  s["instances"].push_back(instance(3, 1, 4500, "starting", 2'000));
  s["instances"][1]["substate"] = "failing";
  s["instances"][1].erase("ready_after_ms");
  s["instances"][1]["waiting_for"] = json::array({"READY=1"});
  s["instances"][1]["probes"] = json::array();
  s["instances"][0]["status"] = "caf\xc3\xa9";
  s["candidate"] = {
      {"generation", 3},
      {"step", "smoke"},
      {"share_percent", 0},
      {"checks", json::array({{{"name", "ready"}, {"state", "passed"}, {"detail", "after 180ms"}},
                              {{"name", "smoke home"}, {"state", "running"}, {"detail", ""}},
                              {{"name", "min_ready 5s"}, {"state", "pending"}, {"detail", ""}}})}};
  s["recent_reloads"] =
      json::array({reload("rolled back", 1, 2, 60'000), reload("refused", 0, 0, 120'000)});
  s["recent_reloads"][1]["error"] = "refused, nothing was changed: baton.toml: no [[socket]]";
  for (const char* k : {"request_to_exec_ms", "exec_to_ready_ms"})
    s["recent_reloads"][1][k] = nullptr;
  s["last_reload"] = s["recent_reloads"][0];
  CHECK(format_status(s) ==
        kServingHead +
            "GEN  ROLE       PID   STATE               UP    READY AFTER  STATUS\n"
            "1    serving    4312  ready               4m1s  180ms        \"caf\xc3\xa9\"\n"
            "3    candidate  4500  starting (failing)  2s    -\n"
            "  waiting for READY=1\n"
            "\n"
            "reload in progress: generation 3 (smoke)\n"
            "  CHECK         STATE    DETAIL\n"
            "  ready         passed   after 180ms\n"
            "  smoke home    running\n"
            "  min_ready 5s  pending\n"
            "\n"
            "reloads: 1 committed; the last 2, newest first:\n"
            "  WHEN      GEN    RESULT       TO EXEC  TO READY  TO SWITCH  DRAIN  OLD PROCESS\n"
            "  1m0s ago  1 \u2192 2  rolled back  2ms      180ms     -          -\n"
            "    generation 2 pid 4400 exited with status 3 before READY=1\n"
            "  2m0s ago  -      refused      -        -         -          -\n"
            "    refused, nothing was changed: baton.toml: no [[socket]]\n");
}

TEST_CASE("status: several instances get an INSTANCE column; an empty generation says so") {
  json s = serving();
  s["wanted_instances"] = 2;
  s["ready_instances"] = 2;
  s["instances"].push_back(instance(1, 2, 4313, "ready", 241'000));
  std::string text = format_status(s);
  CHECK(text.find("serving: generation 1, 2 of 2 instances ready, 0 restarts\n") !=
        std::string::npos);
  CHECK(text.find("GEN  ROLE     INSTANCE  PID   STATE  UP    READY AFTER  STATUS\n"
                  "1    serving  1         4312  ready  4m1s  180ms\n"
                  "1    serving  2         4313  ready  4m1s  180ms\n") != std::string::npos);

  s = serving();
  s["instances"] = json::array();
  s["last_exit"] = {{"reason", "exited with status 4 before READY=1"}, {"ago_ms", 20}};
  s["next_start_in_ms"] = 400;
  s["consecutive_failures"] = 3;
  CHECK(format_status(s).find("\nno app process is running\n"
                              "last exit 20ms ago: exited with status 4 before READY=1\n"
                              "next start in 400ms (failure 3 in a row)\n") != std::string::npos);
}

TEST_CASE("status: colour marks states and results, and headings; none without it") {
  json s = serving();
  s["recent_reloads"] = json::array({reload("ok", 1, 2, 1'000)});
  std::string plain = format_status(s, false);
  std::string coloured = format_status(s, true);
  CHECK(plain.find('\033') == std::string::npos);
  CHECK(coloured.find("\033[32mready\033[m") != std::string::npos);
  CHECK(coloured.find("\033[32mok\033[m") != std::string::npos);
  CHECK(coloured.find("\033[1mGEN\033[m") != std::string::npos);
  // The columns line up as without colour: the escapes take no width.
  std::string stripped;
  for (size_t i = 0; i < coloured.size(); ++i) {
    if (coloured[i] == '\033') {
      i = coloured.find('m', i);
      continue;
    }
    stripped += coloured[i];
  }
  CHECK(stripped == plain);
}

TEST_CASE("status --ready: ready while the serving generation has a ready instance") {
  json s = serving();
  baton::Readiness r = baton::readiness(s);
  CHECK(r.ready);
  CHECK(r.line == "ready: generation 1, 1 of 1 instance ready");

  s["state"] = "stopping";
  r = baton::readiness(s);
  CHECK_FALSE(r.ready);
  CHECK(r.line == "not ready: baton is stopping");

  s = serving();
  s["ready_instances"] = 0;
  s["instances"][0]["state"] = "starting";
  s["instances"][0]["waiting_for"] = json::array({"READY=1", "http /health"});
  s["last_exit"] = {{"reason", "exited with status 3 before READY=1"}, {"ago_ms", 20}};
  r = baton::readiness(s);
  CHECK_FALSE(r.ready);
  CHECK(r.line ==
        "not ready: generation 1 has no ready instance (waiting for READY=1, http /health); last "
        "exit: exited with status 3 before READY=1");
}

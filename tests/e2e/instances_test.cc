// End-to-end tests of several instances per generation (`instances = N`)
// under load: reloads never leave fewer than N ready instances, one
// instance's exit replaces that instance only, and one new instance's
// failure rolls the whole reload back; canary reloads get their share of
// new connections, and promote and rollback move all of them.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "harness.h"
#include "load_client.h"
#include "load_support.h"

using namespace e2e;

namespace {

/// A hello service with `instances` instances on 127.0.0.1.
class Fleet {
 public:
  explicit Fleet(int instances, const std::string& extra = "", const std::string& env = "")
      : instances_(instances), config_(dir_.file("baton.toml")) {
    write(extra, env);
    baton_ = std::make_unique<Baton>(dir_, std::vector<std::string>{"-c", config_},
                                     dir_.file("control.sock"));
    REQUIRE(baton_->wait_ready());
    REQUIRE(baton_->wait_until([&](const nlohmann::json& s) { return ready(s) == instances_; }));
    address_ = baton_->status()["sockets"][0]["address"].get<std::string>();
  }

  void write(const std::string& extra, const std::string& env) {
    std::string port = address_.empty() ? "0" : address_.substr(address_.rfind(':') + 1);
    dir_.write("baton.toml",
               fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\ninstances = {}\n{}\n"
                           "[environment]\n{}\n"
                           "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:{}\"\n",
                           hello_bin(), instances_, extra, env, port));
  }

  CommandResult reload() {
    return run_command({baton_bin(), "reload", "--wait", "-c", config_}, 60s);
  }
  /// `baton COMMAND -c CONFIG ARGS...`.
  CommandResult baton_command(const std::string& command, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {baton_bin(), command, "-c", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  }
  /// The pids of generation `generation`'s instances, whatever their state.
  std::set<pid_t> pids_of(int generation) {
    std::set<pid_t> out;
    nlohmann::json status = baton_->status();
    for (const auto& i : status["instances"]) {
      if (i["generation"] == generation) out.insert(i["pid"].get<pid_t>());
    }
    return out;
  }

  /// Ready instances of every generation in a status.
  static int ready(const nlohmann::json& status) {
    int n = 0;
    for (const auto& i : status["instances"]) n += i["state"] == "ready" ? 1 : 0;
    return n;
  }
  /// The ready instances' pids by slot, of generation `generation`.
  std::map<int, pid_t> ready_pids(int generation) {
    std::map<int, pid_t> out;
    nlohmann::json status = baton_->status();
    for (const auto& i : status["instances"]) {
      if (i["state"] == "ready" && i["generation"] == generation) {
        out[i["instance"].get<int>()] = i["pid"].get<pid_t>();
      }
    }
    return out;
  }

  Baton& baton() { return *baton_; }
  const std::string& address() const { return address_; }
  const std::string& config() const { return config_; }

 private:
  int instances_;
  TempDir dir_;
  std::string config_;
  std::unique_ptr<Baton> baton_;
  std::string address_;
};

/// Samples `baton status --json` every 50ms on a thread of its own and
/// keeps the fewest ready instances it saw.
class ReadySampler {
 public:
  explicit ReadySampler(std::string config) : config_(std::move(config)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        CommandResult r = run_command({baton_bin(), "status", "--json", "-c", config_}, 10s);
        if (r.exit_code == 0) {
          int ready = Fleet::ready(nlohmann::json::parse(r.out));
          samples_++;
          if (ready < fewest_) fewest_ = ready;
        } else {
          errors_++;
        }
        std::this_thread::sleep_for(50ms);  // the sampling period, not a synchronisation
      }
    });
  }
  ~ReadySampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int fewest() const { return fewest_; }
  int samples() const { return samples_; }
  int errors() const { return errors_; }

 private:
  std::string config_;
  std::atomic<bool> stop_{false};
  std::atomic<int> fewest_{1 << 30}, samples_{0}, errors_{0};
  std::thread thread_;
};

/// `baton reload` said that the new instance 3 failed and the old 4 serve on.
void check_third_failed(const CommandResult& r) {
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("baton: reload failed: generation 2 pid ") == 0);
  CHECK(r.err.find("exited with status 3 before READY=1; generation 1 keeps serving (4 of 4 "
                   "instances ready)") != std::string::npos);
}

}  // namespace

TEST_CASE(
    "instances = 4: 10 reloads under load, never fewer than 4 ready, all at once or rolling") {
  for (std::string strategy :
       {"strategy = \"all-at-once\"", "strategy = \"rolling\"\nmax_surge = 1"}) {
    for (load::Mode mode : kModes) {
      CAPTURE(strategy);
      CAPTURE(mode_name(mode));
      Fleet fleet(4, strategy);
      auto load = start_load(fleet.address(), mode, 8);
      REQUIRE(traffic_flows(*load));
      ReadySampler sampler(fleet.config());
      for (int i = 0; i < 10; ++i) {
        CommandResult r = fleet.reload();
        INFO("reload ", i + 1, ": ", r.out, r.err);
        REQUIRE(r.exit_code == 0);
        std::map<int, pid_t> pids = fleet.ready_pids(i + 2);
        REQUIRE(pids.size() == 4);
        // The new generation answers the load before the next reload.
        REQUIRE(eventually([&] {
          for (const auto& [slot, pid] : pids) {
            if (load->has_served(pid)) return true;
          }
          return false;
        }));
      }
      sampler.stop();
      load::LoadResult result = finish_without_failures(*load);
      INFO("baton's log:\n", fleet.baton().log());
      CHECK(sampler.errors() == 0);
      CHECK(sampler.samples() > 0);
      CHECK(sampler.fewest() >= 4);
      auto status = fleet.baton().status();
      CHECK(status["generation"] == 11);
      CHECK(status["ready_instances"] == 4);
      CHECK(status["wanted_instances"] == 4);
    }
  }
}

TEST_CASE("instances = 4: one instance that exits under load is replaced alone, 0 failed") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Fleet fleet(4, "restart_delay = \"10ms\"", "HELLO_EXIT_STATUS = \"1\"");
    auto load = start_load(fleet.address(), mode, 8);
    REQUIRE(traffic_flows(*load));
    std::map<int, pid_t> before = fleet.ready_pids(1);
    REQUIRE(before.size() == 4);
    // Instance 2 quits by itself (it finishes its requests, then exits 1).
    REQUIRE(kill(before[2], SIGINT) == 0);
    REQUIRE(fleet.baton().wait_until(
        [&](const nlohmann::json& s) { return s["restarts"] == 1 && Fleet::ready(s) == 4; }));
    std::map<int, pid_t> after = fleet.ready_pids(1);
    REQUIRE(after.size() == 4);
    CHECK(after[1] == before[1]);
    CHECK(after[2] != before[2]);
    CHECK(after[3] == before[3]);
    CHECK(after[4] == before[4]);
    REQUIRE(traffic_flows(*load));
    finish_without_failures(*load);
    auto status = fleet.baton().status();
    CHECK(status["last_exit"]["reason"].get<std::string>() ==
          fmt::format("pid {} exited with status 1 while ready", before[2]));

    // A SIGKILLed one too (no load: its requests in flight would be lost).
    REQUIRE(kill(after[3], SIGKILL) == 0);
    REQUIRE(fleet.baton().wait_until(
        [&](const nlohmann::json& s) { return s["restarts"] == 2 && Fleet::ready(s) == 4; }));
    std::map<int, pid_t> last = fleet.ready_pids(1);
    CHECK(last[1] == after[1]);
    CHECK(last[2] == after[2]);
    CHECK(last[3] != after[3]);
    CHECK(last[4] == after[4]);
  }
}

TEST_CASE("instances = 4: the 3rd new instance failing rolls the reload back, 0 failed") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Fleet fleet(4);
    std::map<int, pid_t> old = fleet.ready_pids(1);
    auto load = start_load(fleet.address(), mode, 8);
    REQUIRE(traffic_flows(*load));
    fleet.write("", "HELLO_FAULT_INSTANCE = \"3\"\nHELLO_FAIL_AT_BOOT = \"3\"");
    ReadySampler sampler(fleet.config());
    CommandResult r = fleet.reload();
    INFO(r.out, r.err);
    INFO("baton's log:\n", fleet.baton().log());
    check_third_failed(r);
    CHECK(r.err.find("hello: failing at boot as asked") != std::string::npos);
    REQUIRE(traffic_flows(*load));
    load::LoadResult result = finish_without_failures(*load);
    std::set<pid_t> old_pids;
    for (const auto& [slot, pid] : old) old_pids.insert(pid);
    for (const auto& served : result.pids) {
      int pid = served.first;
      CAPTURE(pid);
      CHECK(old_pids.count(pid) == 1);  // no new instance was ever reached
    }
    CHECK(fleet.ready_pids(1) == old);
    sampler.stop();
    CHECK(sampler.fewest() >= 4);
    auto status = fleet.baton().status();
    CHECK(status["generation"] == 1);
    CHECK(status["instances"].size() == 4);
    CHECK(status["last_reload"]["result"] == "rolled back");
  }
}

TEST_CASE("rolling, 4 instances: the 3rd new one failing restores the old 4, then drains the new") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    const std::string rolling = "strategy = \"rolling\"\nmax_surge = 1";
    Fleet fleet(4, rolling);
    std::map<int, pid_t> old = fleet.ready_pids(1);
    auto load = start_load(fleet.address(), mode, 8);
    REQUIRE(traffic_flows(*load));
    fleet.write(rolling, "HELLO_FAULT_INSTANCE = \"3\"\nHELLO_FAIL_AT_BOOT = \"3\"");
    ReadySampler sampler(fleet.config());
    CommandResult r = fleet.reload();
    INFO(r.out, r.err);
    INFO("baton's log:\n", fleet.baton().log());
    check_third_failed(r);
    CHECK(r.out.find("rolling: generation 2 has 2 of 4 instances ready and gets 50% of new "
                     "connections") != std::string::npos);
    CHECK(r.out.find("rolling back: generation 1 starts 2 instance(s) again") != std::string::npos);
    REQUIRE(traffic_flows(*load));
    // The old generation serves alone again, slots 3 and 4 untouched.
    REQUIRE(fleet.baton().wait_until([](const nlohmann::json& s) {
      return s["instances"].size() == 4 && Fleet::ready(s) == 4;
    }));
    sampler.stop();
    load::LoadResult result = finish_without_failures(*load);
    std::map<int, pid_t> now = fleet.ready_pids(1);
    REQUIRE(now.size() == 4);
    CHECK(now[1] != old[1]);
    CHECK(now[2] != old[2]);
    CHECK(now[3] == old[3]);
    CHECK(now[4] == old[4]);
    CHECK(sampler.errors() == 0);
    CHECK(sampler.fewest() >= 4);
    auto status = fleet.baton().status();
    CHECK(status["generation"] == 1);
    CHECK(status["last_reload"]["result"] == "rolled back");
  }
}

namespace {

/// Runs connection-per-request load until `requests` have been answered;
/// how many of them the pids in `pids` served, and the result (0 failed).
std::pair<uint64_t, load::LoadResult> served_by(const std::string& address,
                                                const std::set<pid_t>& pids, uint64_t requests) {
  auto load = start_load(address, load::Mode::kConnectionPerRequest, 8);
  REQUIRE(eventually([&] { return load->completed() >= requests; }, 120s));
  load::LoadResult result = finish_without_failures(*load);
  uint64_t by = 0;
  for (const auto& [pid, count] : result.pids) by += pids.count(pid) ? count : 0;
  return {by, result};
}

}  // namespace

TEST_CASE("canary 10%: its share of 20,000 requests is 7-13%; promote moves every new one") {
  Fleet fleet(2);
  std::set<pid_t> old = fleet.pids_of(1);
  auto keepalive = start_load(fleet.address(), load::Mode::kKeepAlive, 4);
  REQUIRE(traffic_flows(*keepalive));
  CommandResult r = fleet.baton_command("reload", {"--canary", "10%"});
  INFO(r.out, r.err);
  INFO("baton's log:\n", fleet.baton().log());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("baton: canary: generation 2 gets 10% of new connections; `baton promote` "
                   "switches every new connection to it") != std::string::npos);
  auto status = fleet.baton().status();
  CHECK(status["reload_step"] == "canary");
  CHECK(status["canary"]["share_percent"] == 10.0);
  std::set<pid_t> canary = fleet.pids_of(2);
  REQUIRE(canary.size() == 2);

  auto measured = served_by(fleet.address(), canary, 20'000);
  uint64_t by_canary = measured.first;
  const load::LoadResult& result = measured.second;
  double share = static_cast<double>(by_canary) / static_cast<double>(result.ok);
  CAPTURE(by_canary);
  CAPTURE(result.ok);
  CHECK(share >= 0.07);
  CHECK(share <= 0.13);
  uint64_t by_old = 0;
  for (const auto& [pid, count] : result.pids) by_old += old.count(pid) ? count : 0;
  CHECK(by_old + by_canary == result.ok);

  CommandResult p = fleet.baton_command("promote", {"--wait"});
  INFO(p.out, p.err);
  REQUIRE(p.exit_code == 0);
  CHECK(p.out.find("baton: promote: generation 2 takes every new connection") != std::string::npos);
  CHECK(fleet.baton().status()["generation"] == 2);
  auto [by_new, after] = served_by(fleet.address(), canary, 2'000);
  CHECK(by_new == after.ok);
  REQUIRE(traffic_flows(*keepalive));
  finish_without_failures(*keepalive);
}

TEST_CASE("canary: rollback returns every new connection to the old generation, 0 failed") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Fleet fleet(2);
    std::set<pid_t> old = fleet.pids_of(1);
    auto load = start_load(fleet.address(), mode, 8);
    REQUIRE(traffic_flows(*load));
    REQUIRE(fleet.baton_command("reload", {"--canary", "50%"}).exit_code == 0);
    std::set<pid_t> canary = fleet.pids_of(2);
    if (mode == load::Mode::kConnectionPerRequest) {
      REQUIRE(eventually([&] { return load->has_served(*canary.begin()); }));
    }
    CommandResult r = fleet.baton_command("rollback");
    INFO(r.out, r.err);
    INFO("baton's log:\n", fleet.baton().log());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("baton: rolled back: generation 2 is gone; generation 1 keeps serving (2 of "
                     "2 instances ready)") != std::string::npos);
    CHECK(fleet.pids_of(2).empty());
    auto [by_old, after] = served_by(fleet.address(), old, 2'000);
    CHECK(by_old == after.ok);
    REQUIRE(traffic_flows(*load));
    finish_without_failures(*load);
    auto status = fleet.baton().status();
    CHECK(status["generation"] == 1);
    CHECK(status["last_reload"]["result"] == "rolled back");
    CHECK(fleet.baton_command("rollback").exit_code == 1);  // nothing left to roll back
  }
}

TEST_CASE("canary: a probe that starts failing during the hold rolls it back by itself") {
  const std::string checks =
      "[ready]\ninterval = \"50ms\"\n[ready.http]\npath = \"/healthz\"\n"
      "[canary]\nshare = \"20%\"\nhold = \"1m\"\n";
  Fleet fleet(2, checks);
  auto load = start_load(fleet.address(), load::Mode::kConnectionPerRequest, 8);
  REQUIRE(traffic_flows(*load));
  fleet.write(checks, "HELLO_HEALTH_FAIL_AFTER_MS = \"300\"");
  CommandResult r = fleet.reload();
  INFO(r.out, r.err);
  INFO("baton's log:\n", fleet.baton().log());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("it is promoted after 1m0s if its instances stay up and its probes pass") !=
        std::string::npos);
  REQUIRE(fleet.baton().wait_until(
      [](const nlohmann::json& s) {
        return s["reloading"].is_null() && s["last_reload"]["result"] == "rolled back";
      },
      30s));
  auto status = fleet.baton().status();
  CHECK(status["generation"] == 1);
  CHECK(status["last_reload"]["error"].get<std::string>().find(
            "failed its http /healthz 3 times in a row during its canary: http /healthz: 503") !=
        std::string::npos);
  REQUIRE(traffic_flows(*load));
  finish_without_failures(*load);
}

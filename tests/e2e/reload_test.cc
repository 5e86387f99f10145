// End-to-end tests of `baton reload` under continuous load: zero failed
// requests across reloads, rollback of broken versions, drain of in-flight
// requests, overlapping requests and socket changes.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <set>

#include <fmt/format.h>

#include "harness.h"
#include "load_client.h"
#include "load_support.h"

using namespace e2e;

namespace {

/// A hello service under baton on 127.0.0.1 (kernel-chosen port), with its
/// config file rewritten by the test between reloads.
class Service {
 public:
  explicit Service(const std::string& extra = "", const std::string& env = "")
      : config_(dir_.file("baton.toml")) {
    write(extra, env);
    baton_ = std::make_unique<Baton>(dir_, std::vector<std::string>{"-c", config_},
                                     dir_.file("control.sock"));
    REQUIRE(baton_->wait_ready());
    address_ = baton_->status()["sockets"][0]["address"].get<std::string>();
  }

  /// Rewrites the config: top-level `extra` settings, [environment] `env`,
  /// and any `more_sockets` after the http socket.
  void write(const std::string& extra, const std::string& env,
             const std::string& more_sockets = "") {
    dir_.write("baton.toml",
               fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\n{}\n"
                           "[environment]\n{}\n"
                           "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:{}\"\n{}",
                           hello_bin(), extra, env, port(), more_sockets));
  }

  CommandResult reload(bool wait = false) {
    std::vector<std::string> argv = {baton_bin(), "reload", "-c", config_};
    if (wait) argv.push_back("--wait");
    return run_command(argv, 60s);
  }

  Baton& baton() { return *baton_; }
  const std::string& address() const { return address_; }
  const TempDir& dir() const { return dir_; }

 private:
  /// The port bound at start-up, kept in later configs (0 before that).
  std::string port() const {
    return address_.empty() ? "0" : address_.substr(address_.rfind(':') + 1);
  }

  TempDir dir_;
  std::string config_;
  std::unique_ptr<Baton> baton_;
  std::string address_;
};

}  // namespace

TEST_CASE("20 consecutive reloads under load: 0 failed requests, every generation serves") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Service service;
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    std::set<pid_t> generations = {service.baton().instance_pid("ready")};
    for (int i = 0; i < 20; ++i) {
      CommandResult r = service.reload();
      INFO("reload ", i + 1, ": ", r.out, r.err);
      REQUIRE(r.exit_code == 0);
      pid_t pid = service.baton().instance_pid("ready");
      generations.insert(pid);
      // The new generation answers the load before the next reload.
      REQUIRE(eventually([&] { return load->has_served(pid); }));
    }
    load::LoadResult result = finish_without_failures(*load);
    CHECK(generations.size() == 21);
    std::set<pid_t> served;
    for (const auto& [pid, count] : result.pids) served.insert(pid);
    CHECK(served == generations);
    CHECK(service.baton().status()["generation"] == 21);
    CHECK(service.baton().status()["reloads"] == 20);
  }
}

TEST_CASE("a new version that fails to start is rolled back; the old one serves on, 0 failed") {
  struct Failure {
    const char* env;
    const char* reason;
  };
  const Failure failures[] = {
      {"HELLO_FAIL_AT_BOOT = \"3\"", "exited with status 3 before READY=1"},
      {"HELLO_HANG = \"1\"", "sent no READY=1 within ready_timeout (500ms)"},
      {"HELLO_NOTIFY_ERRNO = \"98\"", "reported ERRNO=98 (Address already in use) before READY=1"},
  };
  for (load::Mode mode : kModes) {
    for (const Failure& f : failures) {
      CAPTURE(mode_name(mode));
      std::string env = f.env;
      CAPTURE(env);
      Service service("ready_timeout = \"500ms\"");
      pid_t old = service.baton().instance_pid("ready");
      auto load = start_load(service.address(), mode);
      REQUIRE(traffic_flows(*load));

      service.write("ready_timeout = \"500ms\"", f.env);
      CommandResult r = service.reload();
      INFO(r.out, r.err);
      INFO("baton's log:\n", service.baton().log());  // evaluated only on failure
      CHECK(r.exit_code == 1);
      CHECK(r.err.find(fmt::format("baton: reload failed: generation 2 pid ")) == 0);
      CHECK(r.err.find(fmt::format("{}; generation 1 (pid {}) keeps serving", f.reason, old)) !=
            std::string::npos);
      if (std::string(f.env).starts_with("HELLO_FAIL_AT_BOOT")) {
        CHECK(r.err.find("last stderr lines:\n  hello: failing at boot as asked\n") !=
              std::string::npos);
      }
      REQUIRE(traffic_flows(*load));
      load::LoadResult result = finish_without_failures(*load);
      CHECK(result.pids.size() == 1);
      CHECK(result.pids.count(old) == 1);
      auto status = service.baton().status();
      CHECK(status["generation"] == 1);
      CHECK(status["instances"].size() == 1);
      CHECK(status["instances"][0]["pid"] == old);
      CHECK(status["last_reload"]["result"] == "rolled back");
    }
  }
}

TEST_CASE("a request in flight at reload time completes on the old version, under load") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Service service;
    pid_t old = service.baton().instance_pid("ready");
    int port = std::stoi(service.address().substr(service.address().rfind(':') + 1));
    int fd = connect_stream(service.address(), 10s);
    REQUIRE(fd >= 0);
    auto slow = std::async(std::launch::async, [fd] { return http_get_on(fd, "/slow?ms=2000"); });
    // The old version has accepted the slow connection: the accept queue is
    // empty again (checked before the load starts, so no other connection
    // is in it).
    REQUIRE(eventually([&] { return accept_queue_length(port) == 0; }));
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));

    CommandResult r = service.reload();
    CHECK(r.exit_code == 0);
    Response response = slow.get();
    INFO("baton's log:\n", service.baton().log());
    CHECK(response.error == "");
    CHECK(response.status == 200);
    CHECK(response.body == fmt::format("hello from pid {} version 1\n", old));
    REQUIRE(eventually([&] { return !process_exists(old); }));
    load::LoadResult result = finish_without_failures(*load);
    std::string drained = service.baton().status()["last_reload"]["drain_result"];
    CHECK(drained.starts_with("exited with status 0 after draining for "));
  }
}

// Without load: an app that ignores the drain signal keeps accepting, so the
// requests it holds when it is SIGKILLed fail; that is the app's doing.
TEST_CASE("an old version that ignores the drain signal is killed after drain_timeout") {
  Service service("drain_timeout = \"500ms\"", "HELLO_IGNORE_SIGTERM = \"1\"");
  pid_t old = service.baton().instance_pid("ready");
  CommandResult r = service.reload(/*wait=*/true);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(fmt::format("baton: generation 1 pid {} killed by SIGKILL after drain_timeout "
                               "(500ms)\n",
                               old)) != std::string::npos);
  CHECK_FALSE(process_exists(old));
  auto status = service.baton().status();
  CHECK(status["last_reload"]["drain_result"] == "killed by SIGKILL after drain_timeout (500ms)");
  CHECK(status["last_reload"]["replaced_pid"] == old);
}

TEST_CASE("a config made invalid is refused and nothing is restarted, under load") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Service service;
    pid_t old = service.baton().instance_pid("ready");
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    service.write("drain_timout = \"1s\"", "");
    CommandResult r = service.reload();
    CHECK(r.exit_code == 1);
    CHECK(r.err == fmt::format("baton: reload failed: refused, nothing was changed: {}:3:1: "
                               "unknown key 'drain_timout' in the top level (did you mean "
                               "'drain_timeout'?)\n",
                               service.dir().file("baton.toml")));
    REQUIRE(traffic_flows(*load));
    load::LoadResult result = finish_without_failures(*load);
    CHECK(result.pids.size() == 1);
    auto status = service.baton().status();
    CHECK(status["generation"] == 1);
    CHECK(status["instances"].size() == 1);
    CHECK(status["instances"][0]["pid"] == old);
    CHECK(status["last_reload"]["result"] == "refused");
  }
}

TEST_CASE("a reload requested while another is starting is queued and runs after it") {
  Service service("", "HELLO_BOOT_DELAY_MS = \"300\"");
  auto first = std::async(std::launch::async, [&] { return service.reload(); });
  // The first reload has begun; generation 2 is ready 300ms later, too soon
  // to ask status whether it is still starting.
  REQUIRE(service.baton().notify().wait_for(
      [](const std::string& m) { return m.find("RELOADING=1") != std::string::npos; }, 10s));
  CommandResult second = service.reload();
  CommandResult r1 = first.get();
  CHECK(r1.exit_code == 0);
  CHECK(r1.out.find("reload done: generation 2") != std::string::npos);
  CHECK(second.exit_code == 0);
  CHECK(second.out.find("baton: queued: a reload is in progress (generation 2 is starting); "
                        "this one runs after it ends\n") == 0);
  CHECK(second.out.find("reload done: generation 3") != std::string::npos);
  CHECK(service.baton().status()["generation"] == 3);
}

TEST_CASE("stop during a reload aborts it and leaves no process behind") {
  Service service("", "HELLO_BOOT_DELAY_MS = \"5000\"");
  pid_t old = service.baton().instance_pid("ready");
  auto reload = std::async(std::launch::async, [&] { return service.reload(); });
  pid_t starting = service.baton().wait_instance("starting", 2);
  REQUIRE(starting > 0);
  CommandResult stop =
      run_command({baton_bin(), "stop", "--control", service.dir().file("control.sock")});
  CHECK(stop.exit_code == 0);
  CommandResult r = reload.get();
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(fmt::format("generation 2 pid {} reload aborted: baton is stopping; "
                               "generation 1 is draining",
                               starting)) != std::string::npos);
  // Not "keeps its place (restarting)": generation 1 was serving, not restarting.
  CHECK(r.err.find("restart") == std::string::npos);
  CHECK(service.baton().wait_exit() == 0);
  CHECK_FALSE(process_exists(old));
  CHECK_FALSE(process_exists(starting));
}

TEST_CASE("sockets added by a reload are bound first; removed ones close after their last user") {
  Service service("drain_timeout = \"1s\"", "HELLO_IGNORE_SIGTERM = \"1\"");
  std::string extra = service.dir().file("extra.sock");
  service.write("drain_timeout = \"1s\"", "HELLO_IGNORE_SIGTERM = \"1\"",
                "[[socket]]\nname = \"extra\"\nlisten = \"unix:extra.sock\"\n");
  REQUIRE(service.reload().exit_code == 0);
  pid_t second = service.baton().instance_pid("ready");
  CHECK(http_get(extra).body == fmt::format("hello from pid {} version 1\n", second));

  service.write("", "");
  REQUIRE(service.reload().exit_code == 0);
  pid_t third = service.baton().instance_pid("ready");
  CHECK(service.baton().status()["sockets"].size() == 1);
  // Generation 2 ignores SIGTERM: until it is killed, it still holds "extra".
  CHECK(path_exists(extra));
  CHECK(third != second);
  REQUIRE(eventually([&] { return !process_exists(second); }));
  REQUIRE(eventually([&] { return !path_exists(extra); }));
}

TEST_CASE("a socket change that cannot be applied rolls the reload back") {
  Service service;
  pid_t old = service.baton().instance_pid("ready");
  std::string taken = service.dir().write("taken", "a regular file");
  service.write("", "", "[[socket]]\nname = \"more\"\nlisten = \"unix:taken\"\n");
  CommandResult r = service.reload();
  CHECK(r.exit_code == 1);
  CHECK(r.err == fmt::format("baton: reload failed: refused, nothing was changed: more: cannot "
                             "bind {}: the path exists and is not a socket\n",
                             taken));
  CHECK(service.baton().status()["instances"][0]["pid"] == old);
  CHECK(service.baton().status()["sockets"].size() == 1);
}

TEST_CASE("SIGHUP reloads like baton reload") {
  Service service;
  pid_t old = service.baton().instance_pid("ready");
  kill(service.baton().pid(), SIGHUP);
  REQUIRE(service.baton().wait_until(generation_reached(2)));
  REQUIRE(eventually([&] { return !process_exists(old); }));
  CHECK(service.baton().status()["generation"] == 2);
}

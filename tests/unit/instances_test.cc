// Several instances of a generation (`instances = N`) against FakeOs: each
// slot starts, becomes ready and restarts on its own; an all-at-once reload
// switches once every new instance is ready and fails as a whole when one
// of them fails.
#include <algorithm>

#include "lifecycle_fixture.h"

namespace {

bool has_env(const SpawnSpec& spec, const std::string& entry) {
  return std::find(spec.env.begin(), spec.env.end(), entry) != spec.env.end();
}

/// Generation 1 with 3 instances, pids 1000..1002, all ready.
struct Three : Fixture {
  Three() { config.instances = 3; }
  void boot3() {
    start();
    for (pid_t pid : {1000, 1001, 1002}) notify(pid, "READY=1");
    REQUIRE(listener.last.ready_instances == 3);
    os.take_log();
  }
};

}  // namespace

TEST_CASE("instances: N are started, each told its slot, and the service serves at the first") {
  Three f;
  f.start();
  REQUIRE(f.os.specs.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(has_env(f.os.specs[static_cast<size_t>(i)], fmt::format("BATON_INSTANCE={}", i + 1)));
    CHECK(has_env(f.os.specs[static_cast<size_t>(i)], "BATON_GENERATION=1"));
  }
  CHECK(f.listener.last.instances_wanted == 3);
  f.notify(1001, "READY=1");
  CHECK(f.listener.events == Log{"serving (first)"});
  CHECK(f.listener.last.ready_instances == 1);
  f.notify(1000, "READY=1");
  f.notify(1002, "READY=1");
  CHECK(f.listener.events == Log{"serving (first)"});
  CHECK(f.listener.last.ready_instances == 3);
  std::vector<int> slots;
  for (const InstanceView& v : f.listener.last.instances) slots.push_back(v.instance);
  CHECK(slots == std::vector<int>{1, 2, 3});
}

TEST_CASE("instances: a crash restarts that slot only, with its own backoff") {
  Three f;
  f.boot3();
  f.os.exit(1001, 1);
  CHECK(f.os.take_log() == Log{"exit 1001"});  // nobody else is signalled
  CHECK(f.listener.last.ready_instances == 2);
  REQUIRE(f.listener.last.restarting.size() == 1);
  CHECK(f.listener.last.restarting[0].instance == 2);
  CHECK(f.listener.last.restarting[0].last_exit == "pid 1001 exited with status 1 while ready");
  CHECK(f.os.next_due() == 100ms);
  f.os.advance(100ms);
  CHECK(f.os.take_log() == Log{"spawn 1003"});
  CHECK(has_env(f.os.specs.back(), "BATON_INSTANCE=2"));
  CHECK(f.listener.last.restarts == 1);
  CHECK(f.listener.last.restarting.empty());

  SUBCASE("a second slot's first failure starts at the first delay") {
    f.os.exit(1003, 1);  // slot 2 again: its second failure in a row
    f.os.exit(1000, 1);  // slot 1: its first
    REQUIRE(f.listener.last.restarting.size() == 2);
    CHECK(f.listener.last.restarting[0].instance == 1);
    CHECK(f.listener.last.restarting[0].consecutive_failures == 1);
    CHECK(f.listener.last.restarting[1].instance == 2);
    CHECK(f.listener.last.restarting[1].consecutive_failures == 2);
    f.os.advance(100ms);
    CHECK(f.os.take_log() == Log{"exit 1003", "exit 1000", "spawn 1004"});
    CHECK(has_env(f.os.specs.back(), "BATON_INSTANCE=1"));
    f.os.advance(100ms);  // slot 2 waits 200ms
    CHECK(f.os.take_log() == Log{"spawn 1005"});
    CHECK(has_env(f.os.specs.back(), "BATON_INSTANCE=2"));
  }
}

TEST_CASE("instances: a missed watchdog replaces that instance alone, no reload") {
  Three g;
  g.config.watchdog_sec = 300ms;
  g.boot3();
  g.os.advance(250ms);
  g.notify(1000, "WATCHDOG=1");
  g.notify(1002, "WATCHDOG=1");
  g.os.advance(100ms);  // 1001's watchdog (armed at READY=1) is over
  CHECK(g.os.take_log() == Log{"KILL 1001"});
  CHECK(g.listener.events == Log{"serving (first)"});  // no RELOADING=1
  g.os.exit(1001, 0, SIGKILL);
  g.os.advance(100ms);
  CHECK(g.os.take_log() == Log{"exit 1001", "spawn 1003"});
  CHECK(has_env(g.os.specs.back(), "BATON_INSTANCE=2"));
}

TEST_CASE("instances: an all-at-once reload switches once every new instance is ready") {
  Three f;
  f.boot3();
  auto client = f.reload(true);
  CHECK(f.os.take_log() == Log{"spawn 1003", "spawn 1004", "spawn 1005"});
  for (int i = 0; i < 3; ++i) {
    CHECK(has_env(f.os.specs[static_cast<size_t>(3 + i)], fmt::format("BATON_INSTANCE={}", i + 1)));
  }
  f.notify(1003, "READY=1");
  f.notify(1005, "READY=1");
  CHECK(f.os.take_log().empty());  // no switch yet
  CHECK(client->events.empty());
  f.notify(1004, "READY=1");
  CHECK(f.os.take_log() == Log{"switch", "TERM 1000", "TERM 1001", "TERM 1002"});
  CHECK(client->events == Log{"draining"});
  CHECK(f.listener.last.generation == 2);
  CHECK(f.listener.last.ready_instances == 3);
  REQUIRE(f.listener.last.last_reload);
  CHECK(f.listener.last.last_reload->pids == std::vector<pid_t>{1003, 1004, 1005});
  CHECK(f.listener.last.last_reload->replaced_pids == std::vector<pid_t>{1000, 1001, 1002});
  for (pid_t pid : {1000, 1001}) {
    f.os.exit(pid);
    f.os.release(pid);
  }
  CHECK(client->events == Log{"draining"});  // 1002 still drains
  CHECK(f.listener.last.last_reload->drain_result.empty());
  f.os.exit(1002);
  CHECK(f.listener.last.last_reload->drain_result.find("exited with status 0") == 0);
  f.os.release(1002);
  CHECK(client->events == Log{"draining", "ok"});
}

TEST_CASE("instances: one new instance failing rolls the whole reload back") {
  Three f;
  f.boot3();
  auto client = f.reload();
  f.os.take_log();
  f.notify(1003, "READY=1");
  SUBCASE("it exits before READY=1: the others are killed, the old ones untouched") {
    f.os.exit(1004, 3);
    CHECK(f.os.take_log() == Log{"exit 1004", "KILL 1003", "KILL 1005"});
    f.os.release(1004);
    f.os.exit(1003, 0, SIGKILL);
    f.os.release(1003);
    CHECK(client->events.empty());  // 1005 is not released yet
    f.os.exit(1005, 0, SIGKILL);
    f.os.release(1005);
    REQUIRE(client->outcome);
    CHECK(client->outcome->error ==
          "generation 2 pid 1004 exited with status 3 before READY=1; generation 1 keeps serving "
          "(3 of 3 instances ready)");
    CHECK(f.os.take_log() == Log{"exit 1003", "exit 1005"});  // no signal to 1000..1002
    CHECK(f.listener.last.generation == 1);
    CHECK(f.listener.last.ready_instances == 3);
  }
  SUBCASE("a smoke check fails: every new instance is killed") {
    Three g;
    g.config.smoke.push_back(CheckCommand{"", {"smoke"}, 5'000ms});
    g.boot3();
    auto c = g.reload();
    for (pid_t pid : {1003, 1004, 1005}) g.notify(pid, "READY=1");
    g.os.take_log();
    g.os.finish_command(g.os.pending_command("smoke"), false, "exited with status 1");
    CHECK(g.os.take_log() == Log{"KILL 1003", "KILL 1004", "KILL 1005"});
    for (pid_t pid : {1003, 1004, 1005}) {
      g.os.exit(pid, 0, SIGKILL);
      g.os.release(pid);
    }
    REQUIRE(c->outcome);
    CHECK(c->outcome->error.find("generation 2 pid 1003 failed a smoke check: smoke smoke: "
                                 "exited with status 1") == 0);
  }
}

TEST_CASE("instances: a new instance that cannot be spawned fails the reload") {
  Three g;
  g.boot3();
  g.os.spawn_failures_after = 2;
  auto c = g.reload();
  CHECK(g.os.take_log() == Log{"spawn 1003", "spawn 1004", "KILL 1003", "KILL 1004"});
  for (pid_t pid : {1003, 1004}) {
    g.os.exit(pid, 0, SIGKILL);
    g.os.release(pid);
  }
  REQUIRE(c->outcome);
  CHECK(c->outcome->error.find("could not be started: cannot start app") != std::string::npos);
  CHECK(g.listener.last.ready_instances == 3);
}

namespace {

/// Ready instances of every generation in the last status.
int ready_in_all(const Fixture& f) {
  int n = 0;
  for (const InstanceView& v : f.listener.last.instances) n += v.state == InstanceState::kReady;
  return n;
}

}  // namespace

TEST_CASE("rolling: max_surge at a time, a share in proportion, never fewer than N ready") {
  Three f;
  f.config.strategy = Config::Strategy::kRolling;
  f.boot3();
  auto client = f.reload(true);
  CHECK(f.os.take_log() == Log{"spawn 1003"});
  CHECK(has_env(f.os.specs.back(), "BATON_INSTANCE=1"));
  CHECK(ready_in_all(f) == 3);
  f.notify(1003, "READY=1");
  // 1 new of 3 ready: a third of new connections; old instance 1 drains.
  CHECK(f.os.take_log() == Log{"share 3333", "TERM 1000", "spawn 1004"});
  CHECK(has_env(f.os.specs.back(), "BATON_INSTANCE=2"));
  CHECK(ready_in_all(f) == 3);
  CHECK(f.listener.last.generation == 1);
  f.notify(1004, "READY=1");
  CHECK(f.os.take_log() == Log{"share 6666", "TERM 1001", "spawn 1005"});
  CHECK(ready_in_all(f) == 3);
  CHECK(client->events.empty());
  f.notify(1005, "READY=1");
  CHECK(f.os.take_log() == Log{"switch", "TERM 1002"});
  CHECK(client->events == Log{"draining"});
  CHECK(f.listener.last.generation == 2);
  CHECK(ready_in_all(f) == 3);
  for (pid_t pid : {1000, 1001, 1002}) {
    f.os.exit(pid);
    f.os.release(pid);
  }
  CHECK(client->events == Log{"draining", "ok"});
  REQUIRE(f.listener.last.last_reload);
  CHECK(f.listener.last.last_reload->pids == std::vector<pid_t>{1003, 1004, 1005});
}

TEST_CASE("rolling: max_surge 2 of 4 starts two at a time and drains two") {
  Fixture f;
  f.config.instances = 4;
  f.config.strategy = Config::Strategy::kRolling;
  f.config.max_surge = 2;
  f.start();
  for (pid_t pid : {1000, 1001, 1002, 1003}) f.notify(pid, "READY=1");
  auto client = f.reload();
  CHECK(f.os.take_log() == Log{"spawn 1004", "spawn 1005"});
  f.notify(1005, "READY=1");
  CHECK(f.os.take_log().empty());
  f.notify(1004, "READY=1");
  CHECK(f.os.take_log() == Log{"share 5000", "TERM 1000", "TERM 1001", "spawn 1006", "spawn 1007"});
  f.notify(1006, "READY=1");
  f.notify(1007, "READY=1");
  CHECK(f.os.take_log() == Log{"switch", "TERM 1002", "TERM 1003"});
  CHECK(client->events == Log{"ok"});
}

TEST_CASE("rolling: a failure after a share restores the old slots first, then takes it back") {
  Three f;
  f.config.strategy = Config::Strategy::kRolling;
  f.boot3();
  auto client = f.reload();
  f.notify(1003, "READY=1");
  f.notify(1004, "READY=1");
  CHECK(f.os.take_log() == Log{"spawn 1003", "share 3333", "TERM 1000", "spawn 1004", "share 6666",
                               "TERM 1001", "spawn 1005"});
  f.os.exit(1000);
  f.os.release(1000);
  f.os.exit(1005, 3);  // the 3rd new instance fails
  // Old instances 1 and 2 start again; the new ones keep their share meanwhile.
  CHECK(f.os.take_log() == Log{"exit 1000", "exit 1005", "spawn 1006", "spawn 1007"});
  for (size_t i : {6u, 7u}) {
    CHECK(has_env(f.os.specs.at(i), "BATON_GENERATION=1"));
    CHECK(has_env(f.os.specs.at(i), fmt::format("BATON_INSTANCE={}", i - 5)));
  }
  CHECK(f.listener.last.reload_step == "restoring");
  f.notify(1006, "READY=1");
  CHECK(f.os.take_log().empty());
  f.notify(1007, "READY=1");
  CHECK(f.os.take_log() == Log{"share 0"});
  CHECK(f.listener.last.reload_step == "unsharing");
  CHECK(ready_in_all(f) == 5);  // 1002, 1006, 1007 and the new 1003, 1004
  f.os.advance(50ms);           // the new listeners' queues stay empty for 50ms
  CHECK(f.os.take_log() == Log{"TERM 1003", "TERM 1004"});
  CHECK(client->events.empty());
  f.os.release(1005);
  for (pid_t pid : {1003, 1004}) {
    f.os.exit(pid);
    f.os.release(pid);
  }
  REQUIRE(client->outcome);
  CHECK(client->outcome->error ==
        "generation 2 pid 1005 exited with status 3 before READY=1; generation 1 keeps serving (3 "
        "of 3 instances ready)");
  CHECK(f.listener.last.generation == 1);
  CHECK(f.listener.last.ready_instances == 3);
  std::vector<int> slots;
  for (const InstanceView& v : f.listener.last.instances) {
    if (v.state == InstanceState::kReady) slots.push_back(v.instance);
  }
  std::sort(slots.begin(), slots.end());
  CHECK(slots == std::vector<int>{1, 2, 3});
  f.os.exit(1001);
  f.os.release(1001);
  CHECK(f.os.next_due() == std::nullopt);  // nothing to restart
}

TEST_CASE("rolling: a failure in the first step is a plain rollback") {
  Three f;
  f.config.strategy = Config::Strategy::kRolling;
  f.boot3();
  auto client = f.reload();
  f.os.exit(1003, 3);
  f.os.release(1003);
  REQUIRE(client->outcome);
  CHECK(client->outcome->error ==
        "generation 2 pid 1003 exited with status 3 before READY=1; generation 1 keeps serving (3 "
        "of 3 instances ready)");
  CHECK(f.os.take_log() == Log{"spawn 1003", "exit 1003"});
}

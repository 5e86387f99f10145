// The lifecycle table, cell by cell, and the orderings of events that the
// end-to-end suite cannot produce, against FakeOs: no processes, no loop,
// the clock moved by hand. Each instance-table cell is a SUBCASE named
// "state x event"; what a "-" cell must leave alone is asserted too.
#include "lifecycle_fixture.h"

TEST_CASE("lifecycle: starting x every event") {
  Fixture f;
  pid_t pid = f.start();
  REQUIRE(f.state(pid) == "starting");
  REQUIRE(f.os.next_due() == 1000ms);  // ready_timeout

  SUBCASE("starting x WATCHDOG=1: -") {
    f.notify(pid, "WATCHDOG=1");
    CHECK(f.state(pid) == "starting");
    CHECK(f.os.next_due() == 1000ms);
  }
  SUBCASE("starting x ERRNO=: fail to start (KILL) -> failing") {
    f.notify(pid, "ERRNO=5");
    CHECK(f.state(pid) == "failing");
    CHECK(f.os.take_log() == Log{"KILL 1000"});
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("starting x STOPPING=1: fail to start (KILL) -> failing") {
    f.notify(pid, "STOPPING=1");
    CHECK(f.state(pid) == "failing");
    CHECK(f.os.take_log() == Log{"KILL 1000"});
  }
  SUBCASE("starting x EXTEND_TIMEOUT_USEC=: the timer is re-armed for the extension") {
    f.os.advance(900ms);
    f.notify(pid, "EXTEND_TIMEOUT_USEC=5000000");
    CHECK(f.state(pid) == "starting");
    CHECK(f.os.next_due() == 5000ms);
  }
  SUBCASE("starting x READY=1: -> ready, the service serves") {
    f.notify(pid, "READY=1");
    CHECK(f.state(pid) == "ready");
    CHECK(f.listener.events == Log{"serving (first)"});
    CHECK(f.os.next_due() == std::nullopt);  // no watchdog configured
  }
  SUBCASE("starting x exit: -> exited, restart later") {
    f.os.exit(pid, 1);
    CHECK(f.state(pid) == "exited");
    CHECK(f.os.process(pid).retired);
    CHECK(f.listener.last.last_exit == "pid 1000 exited with status 1 before READY=1");
    CHECK(f.os.next_due() == 100ms);  // restart_delay
    f.os.advance(100ms);
    CHECK(f.os.take_log() == Log{"exit 1000", "spawn 1001"});
    CHECK(f.state(1001) == "starting");
  }
  SUBCASE("starting x timer (ready_timeout): fail to start (KILL) -> failing") {
    f.os.advance(1000ms);
    CHECK(f.state(pid) == "failing");
    CHECK(f.os.take_log() == Log{"KILL 1000"});
    f.os.exit(pid, 0, SIGKILL);
    CHECK(f.listener.last.last_exit == "pid 1000 sent no READY=1 within ready_timeout (1s)");
  }
  SUBCASE("starting x drain (stop): -> draining") {
    f.stop();
    CHECK(f.state(pid) == "draining");
    CHECK(f.os.take_log() == Log{"TERM 1000"});
    CHECK(f.os.next_due() == 500ms);  // drain_timeout
  }
  SUBCASE("starting x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "starting");
  }
}

TEST_CASE("lifecycle: a command that cannot be executed is not restarted") {
  Fixture f;
  pid_t pid = f.start();
  SUBCASE("exit 127 before it was ever ready: no restart, the reason says why") {
    f.os.exit(pid, 127);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_exit ==
          "pid 1000 exited with status 127 (the command could not be executed) before READY=1; "
          "not restarted: the command cannot be executed (fix it, then reload)");
    CHECK(f.os.next_due() == std::nullopt);
    CHECK(f.listener.last.next_start_at == Clock::time_point{});
    // A reload (the fix) starts a new generation as usual.
    auto client = f.reload();
    CHECK(f.os.take_log() == Log{"exit 1000", "spawn 1001"});
  }
  SUBCASE("exit 126 likewise") {
    f.os.exit(pid, 126);
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("exit 127 after it was ready once: restarted as any crash") {
    f.notify(pid, "READY=1");
    f.os.exit(pid, 127);
    CHECK(f.os.next_due() == 100ms);
  }
}

TEST_CASE("lifecycle: a READY=1 from another process of the group does not count, and says so") {
  Fixture f;
  pid_t pid = f.start();
  f.os.groups[4242] = pid;  // a worker, or a wrapper's systemd-notify
  f.notify(4242, "READY=1");
  CHECK(f.state(pid) == "starting");
  f.os.advance(1000ms);
  f.os.exit(pid, 0, SIGKILL);
  CHECK(f.listener.last.last_exit ==
        "pid 1000 sent no READY=1 within ready_timeout (1s); a READY=1 came from pid 4242 "
        "(gone), which is not the main pid (pid 1000): only the main pid's count, or the one it "
        "names with MAINPID=");
}

TEST_CASE("lifecycle: the app's environment names its service, generation and instance") {
  Fixture f;
  f.config.name = "web";
  f.boot();
  auto client = f.reload();
  REQUIRE(f.os.specs.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const auto& env = f.os.specs[i].env;
    auto has = [&](const std::string& entry) {
      return std::find(env.begin(), env.end(), entry) != env.end();
    };
    CHECK(has("BATON_SERVICE=web"));
    CHECK(has(fmt::format("BATON_GENERATION={}", i + 1)));
    CHECK(has("BATON_INSTANCE=1"));
  }
}

TEST_CASE("lifecycle: failing x every event") {
  Fixture f;
  pid_t pid = f.start();
  f.notify(pid, "ERRNO=5");
  REQUIRE(f.state(pid) == "failing");
  f.os.take_log();

  SUBCASE("failing x notify messages: -") {
    for (const char* msg : {"WATCHDOG=1", "ERRNO=7", "EXTEND_TIMEOUT_USEC=5000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "failing");
    }
    CHECK(f.listener.events.empty());  // READY=1 after KILL does not serve
    CHECK(f.os.take_log().empty());
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("failing x exit: -> exited for the failure, restart later") {
    f.os.exit(pid, 0, SIGKILL);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_exit ==
          "pid 1000 reported ERRNO=5 (Input/output error) before READY=1");
    CHECK(f.os.next_due() == 100ms);
  }
  SUBCASE("failing x timer: none is armed") {
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("failing x drain (stop): - (it is being killed)") {
    f.stop();
    CHECK(f.state(pid) == "failing");
    CHECK(f.os.take_log().empty());
    f.os.exit(pid, 0, SIGKILL);
    f.os.release(pid);
    CHECK(f.stopped);
  }
  SUBCASE("failing x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "failing");
  }
}

TEST_CASE("lifecycle: ready x every event") {
  Fixture f;
  f.config.watchdog_sec = 2000ms;
  pid_t pid = f.boot();
  REQUIRE(f.state(pid) == "ready");
  REQUIRE(f.os.next_due() == 2000ms);  // the watchdog
  f.os.take_log();

  SUBCASE("ready x WATCHDOG=1: the watchdog is re-armed") {
    f.os.advance(1500ms);
    f.notify(pid, "WATCHDOG=1");
    CHECK(f.os.next_due() == 2000ms);
    CHECK(f.state(pid) == "ready");
  }
  SUBCASE("ready x ERRNO=, STOPPING=1, EXTEND_TIMEOUT_USEC=, READY=1: -") {
    f.os.advance(500ms);
    for (const char* msg : {"ERRNO=5", "STOPPING=1", "EXTEND_TIMEOUT_USEC=9000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "ready");
    }
    CHECK(f.os.next_due() == 1500ms);
    CHECK(f.os.take_log().empty());
    CHECK(f.listener.events == Log{"serving (first)"});
  }
  SUBCASE("ready x exit: -> exited, restart later") {
    f.os.exit(pid, 0, SIGSEGV);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_exit == "pid 1000 was killed by SIGSEGV while ready");
    CHECK(f.os.next_due() == 100ms);
  }
  SUBCASE("ready x timer (watchdog): a reload onto the same config replaces it") {
    f.os.advance(2000ms);
    CHECK(f.os.take_log() == Log{"spawn 1001"});
    CHECK(f.state(pid) == "ready");
    CHECK(f.listener.events == Log{"serving (first)", "reloading"});
    f.notify(1001, "READY=1");
    CHECK(f.os.take_log() == Log{"switch", "TERM 1000"});
    CHECK(f.listener.last.generation == 2);
  }
  SUBCASE("ready x drain (stop): -> draining") {
    f.stop();
    CHECK(f.state(pid) == "draining");
    CHECK(f.os.take_log() == Log{"TERM 1000"});
    CHECK(f.os.next_due() == 500ms);
  }
  SUBCASE("ready x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "ready");
  }
}

TEST_CASE("lifecycle: draining x every event") {
  Fixture f;
  pid_t pid = f.draining();
  REQUIRE(f.state(pid) == "draining");
  REQUIRE(f.os.next_due() == 500ms);

  SUBCASE("draining x notify messages: -") {
    for (const char* msg : {"WATCHDOG=1", "ERRNO=5", "EXTEND_TIMEOUT_USEC=9000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "draining");
    }
    CHECK(f.os.next_due() == 500ms);
    CHECK(f.os.take_log().empty());
  }
  SUBCASE("draining x exit, group gone: -> exited") {
    f.os.advance(120ms);
    f.os.exit(pid, 0);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_reload->drain_result ==
          "exited with status 0 after draining for 120ms");
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("draining x exit, group alive: -> lingering") {
    f.os.exit(pid, 0, 0, true);
    CHECK(f.state(pid) == "lingering");
    CHECK(f.os.next_due() == 50ms);
  }
  SUBCASE("draining x timer (drain_timeout): KILL -> drain-killed") {
    f.os.advance(500ms);
    CHECK(f.state(pid) == "drain-killed");
    CHECK(f.os.take_log() == Log{"KILL 1000"});
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("draining x drain (stop): -") {
    f.stop();
    CHECK(f.state(pid) == "draining");
    CHECK(f.os.take_log() == Log{"TERM 1001"});
  }
  SUBCASE("draining x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "draining");
  }
}

TEST_CASE("lifecycle: drain-killed x every event") {
  Fixture f;
  pid_t pid = f.draining();
  f.os.advance(500ms);
  REQUIRE(f.state(pid) == "drain-killed");
  f.os.take_log();

  SUBCASE("drain-killed x notify messages: -") {
    for (const char* msg : {"WATCHDOG=1", "ERRNO=5", "EXTEND_TIMEOUT_USEC=9000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "drain-killed");
    }
    CHECK(f.os.take_log().empty());
  }
  SUBCASE("drain-killed x exit: -> exited, killed after drain_timeout") {
    f.os.exit(pid, 0, SIGKILL);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_reload->drain_result ==
          "killed by SIGKILL after drain_timeout (500ms)");
  }
  SUBCASE("drain-killed x exit, a worker lives on: it is killed too") {
    f.os.exit(pid, 0, SIGKILL, true);
    CHECK(f.state(pid) == "exited");
    CHECK(f.os.take_log() == Log{"exit 1000", "KILL 1000"});
  }
  SUBCASE("drain-killed x timer: none is armed") {
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("drain-killed x drain (stop): -") {
    f.stop();
    CHECK(f.state(pid) == "drain-killed");
    CHECK(f.os.take_log() == Log{"TERM 1001"});
  }
  SUBCASE("drain-killed x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "drain-killed");
  }
}

TEST_CASE("lifecycle: lingering x every event") {
  Fixture f;
  pid_t pid = f.draining();
  f.os.exit(pid, 0, 0, true);
  REQUIRE(f.state(pid) == "lingering");
  f.os.take_log();

  SUBCASE("lingering x notify messages: - (its main pid is gone)") {
    for (const char* msg : {"WATCHDOG=1", "ERRNO=5", "EXTEND_TIMEOUT_USEC=9000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "lingering");
    }
    CHECK(f.os.next_due() == 50ms);
  }
  SUBCASE("lingering x exit: -") {
    f.os.process(pid).events.on_exit(0, 0);
    CHECK(f.state(pid) == "lingering");
  }
  SUBCASE("lingering x timer, group alive: poll again") {
    f.os.advance(50ms);
    CHECK(f.state(pid) == "lingering");
    CHECK(f.os.next_due() == 50ms);
  }
  SUBCASE("lingering x timer, group gone: -> exited") {
    f.os.process(pid).alive = false;
    f.os.advance(50ms);
    CHECK(f.state(pid) == "exited");
    CHECK(f.listener.last.last_reload->drain_result ==
          "exited with status 0 after draining for 50ms");
  }
  SUBCASE("lingering x timer past drain_timeout: KILL -> exited") {
    f.os.advance(500ms);
    CHECK(f.state(pid) == "exited");
    CHECK(f.os.take_log() == Log{"KILL 1000"});
    CHECK(f.listener.last.last_reload->drain_result ==
          "killed by SIGKILL after drain_timeout (500ms)");
  }
  SUBCASE("lingering x drain (stop): -") {
    f.stop();
    CHECK(f.state(pid) == "lingering");
    CHECK(f.os.take_log() == Log{"TERM 1001"});
  }
  SUBCASE("lingering x released: -") {
    f.os.process(pid).events.on_released();
    CHECK(f.state(pid) == "lingering");
  }
}

TEST_CASE("lifecycle: exited x every event") {
  Fixture f;
  pid_t pid = f.draining();
  f.os.exit(pid, 0);
  REQUIRE(f.state(pid) == "exited");
  f.os.take_log();

  SUBCASE("exited x notify messages: -") {
    for (const char* msg : {"WATCHDOG=1", "ERRNO=5", "EXTEND_TIMEOUT_USEC=9000000", "READY=1"}) {
      f.notify(pid, msg);
      CHECK(f.state(pid) == "exited");
    }
  }
  SUBCASE("exited x exit: -") {
    f.os.process(pid).events.on_exit(0, 0);
    CHECK(f.state(pid) == "exited");
    CHECK(f.os.take_log().empty());
  }
  SUBCASE("exited x timer: none is armed") {
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("exited x drain (stop): -") {
    f.stop();
    CHECK(f.state(pid) == "exited");
    CHECK(f.os.take_log() == Log{"TERM 1001"});
  }
  SUBCASE("exited x released: forgotten") {
    f.os.release(pid);
    CHECK(f.state(pid) == "released");
  }
}

// ---- The reload table ------------------------------------------------------

TEST_CASE("reload: starting x every event") {
  Fixture f;
  f.boot();
  auto client = f.reload();
  REQUIRE(f.os.take_log() == Log{"spawn 1001"});
  REQUIRE(f.listener.last.reloading == 2);

  SUBCASE("starting x candidate READY=1, no min_ready: commit, drain the old one") {
    f.notify(1001, "READY=1");
    CHECK(client->events == Log{"ok"});
    CHECK(f.os.take_log() == Log{"switch", "TERM 1000"});
    CHECK(f.listener.last.generation == 2);
    CHECK(f.listener.events == Log{"serving (first)", "reloading", "serving"});
  }
  SUBCASE("starting x candidate failed: -> failed, rolled back once released") {
    f.os.exit(1001, 3);
    CHECK(client->events.empty());
    f.os.release(1001);
    CHECK(client->events ==
          Log{"failed: generation 2 pid 1001 exited with status 3 before READY=1; generation 1 "
              "(pid 1000) keeps serving"});
    CHECK(client->outcome->record->result == "rolled back");
    CHECK(f.state(1000) == "ready");
    CHECK(f.listener.last.generation == 1);
  }
  SUBCASE("starting x min_ready elapsed: -") {
    f.os.advance(999ms);  // nothing but the candidate's ready_timeout is armed
    CHECK(f.state(1001) == "starting");
    CHECK(client->events.empty());
  }
  SUBCASE("starting x released: - (a candidate is released only after it failed)") {
    f.os.process(1001).events.on_released();
    CHECK(f.listener.last.reloading == 2);
    CHECK(client->events.empty());
  }
  SUBCASE("starting x stop: -> failed (aborted); both are drained") {
    f.stop();
    CHECK(f.os.take_log() == Log{"TERM 1000", "TERM 1001"});
    f.os.exit(1001, 0);
    f.os.release(1001);
    CHECK(client->outcome->record->result == "aborted");
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 reload aborted: baton is stopping; generation 1 is draining");
    f.os.exit(1000, 0);
    f.os.release(1000);
    CHECK(f.stopped);
  }
}

TEST_CASE("reload: holding x every event") {
  Fixture f;
  f.config.min_ready = 300ms;
  f.boot();
  auto client = f.reload();
  f.notify(1001, "READY=1");  // starting x READY=1 with min_ready: hold
  REQUIRE(f.os.take_log() == Log{"spawn 1001"});
  REQUIRE(f.os.next_due() == 300ms);
  REQUIRE(client->events.empty());

  SUBCASE("holding x READY=1: -") {
    f.notify(1001, "READY=1");
    CHECK(f.os.next_due() == 300ms);
    CHECK(client->events.empty());
  }
  SUBCASE("holding x candidate failed (exit): -> failed, rolled back") {
    f.os.advance(100ms);
    f.os.exit(1001, 0, SIGKILL);
    f.os.advance(500ms);  // the hold no longer commits
    CHECK(f.os.take_log() == Log{"exit 1001"});
    f.os.release(1001);
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 was killed by SIGKILL while ready within min_ready (300ms); "
          "generation 1 (pid 1000) keeps serving");
  }
  SUBCASE("holding x min_ready elapsed: commit") {
    f.os.advance(300ms);
    CHECK(client->events == Log{"ok"});
    CHECK(f.os.take_log() == Log{"switch", "TERM 1000"});
    const ReloadRecord& r = *client->outcome->record;
    CHECK(between_ms(r.ready_at, r.drain_sent_at) == 300);
  }
  SUBCASE("holding x released: -") {
    f.os.process(1001).events.on_released();
    CHECK(f.listener.last.reloading == 2);
  }
  SUBCASE("holding x stop: -> failed (aborted)") {
    f.stop();
    f.os.advance(300ms);
    CHECK(f.os.take_log() == Log{"TERM 1000", "TERM 1001"});
    f.os.exit(1001, 0);
    f.os.release(1001);
    CHECK(client->outcome->record->result == "aborted");
  }
}

TEST_CASE("reload: failed x every event") {
  Fixture f;
  f.boot();
  auto client = f.reload();
  f.notify(1001, "ERRNO=2");
  REQUIRE(f.os.take_log() == Log{"spawn 1001", "KILL 1001"});

  SUBCASE("failed x READY=1 (after the candidate was told to die): -") {
    f.notify(1001, "READY=1");
    CHECK(f.os.take_log().empty());
    CHECK(f.listener.last.generation == 1);
    CHECK(client->events.empty());
  }
  SUBCASE("failed x candidate exit: - until it is released") {
    f.os.exit(1001, 0, SIGKILL);
    CHECK(client->events.empty());
    f.os.release(1001);
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 reported ERRNO=2 (No such file or directory) before READY=1; "
          "generation 1 (pid 1000) keeps serving");
  }
  SUBCASE("failed x min_ready elapsed: -") {
    CHECK(f.os.next_due() == std::nullopt);
  }
  SUBCASE("failed x stop: - (the candidate is being killed; the old one drains)") {
    f.stop();
    CHECK(f.os.take_log() == Log{"TERM 1000"});
    f.os.exit(1001, 0, SIGKILL);
    f.os.release(1001);
    CHECK(client->outcome->record->result == "aborted");
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 reported ERRNO=2 (No such file or directory) before READY=1; "
          "generation 1 is draining");
  }
}

TEST_CASE("reload: requests while none, one, or a stop is in progress") {
  Fixture f;
  f.boot();
  SUBCASE("a config that does not load is refused; nothing changes") {
    f.loads = false;
    auto client = f.reload();
    CHECK(client->events == Log{"failed: refused, nothing was changed: bad config"});
    CHECK(f.os.take_log().empty());
    CHECK(f.sup->snapshot().last_reload->result == "refused");
  }
  SUBCASE("a candidate that cannot be spawned is rolled back at once") {
    f.os.fail_spawns = 1;
    auto client = f.reload();
    CHECK(client->outcome->record->result == "rolled back");
    CHECK(f.state(1000) == "ready");
  }
  SUBCASE("a request during stop is refused") {
    f.stop();
    auto client = f.reload();
    CHECK(client->events == Log{"failed: baton is stopping"});
  }
  SUBCASE("wait: the client is answered once the replaced instance is released") {
    auto client = f.reload(true);
    f.notify(1001, "READY=1");
    CHECK(client->events == Log{"draining"});
    f.os.exit(1000, 0);
    CHECK(client->events == Log{"draining"});
    f.os.release(1000);
    CHECK(client->events == Log{"draining", "ok"});
    CHECK(client->outcome->record->drain_result == "exited with status 0 after draining for 0ms");
  }
}

// ---- Orderings the end-to-end suite cannot produce --------------------------

TEST_CASE("ordering: a reload queued behind a reload that rolls back runs after it") {
  Fixture f;
  f.boot();
  auto first = f.reload();
  auto second = f.reload();
  REQUIRE(second->events.size() == 1);
  CHECK(second->events[0].starts_with("queued: a reload is in progress (generation 2"));
  f.os.exit(1001, 1);
  f.os.release(1001);
  CHECK(first->outcome->record->result == "rolled back");
  CHECK(f.os.take_log() == Log{"spawn 1001", "exit 1001", "spawn 1002"});
  f.notify(1002, "READY=1");
  CHECK(second->events.back() == "ok");
  CHECK(second->outcome->record->generation == 3);
  CHECK(f.os.take_log() == Log{"switch", "TERM 1000"});
}

TEST_CASE("ordering: a queued reload is refused when baton stops") {
  Fixture f;
  f.boot();
  auto first = f.reload();
  auto second = f.reload();
  f.stop();
  CHECK(second->events.back() == "failed: reload aborted: baton is stopping");
  CHECK(f.os.take_log() == Log{"spawn 1001", "TERM 1000", "TERM 1001"});
}

TEST_CASE("ordering: the drain timeout and the exit in the same loop turn") {
  Fixture f;
  pid_t pid = f.draining();
  SUBCASE("timer first: KILL, then the exit ends it as killed") {
    f.os.advance(500ms);
    f.os.exit(pid, 0);
    CHECK(f.os.take_log() == Log{"KILL 1000", "exit 1000"});
    CHECK(f.listener.last.last_reload->drain_result ==
          "killed by SIGKILL after drain_timeout (500ms)");
  }
  SUBCASE("exit first: the drain timer is cancelled, nothing is killed") {
    f.os.advance(499ms);
    f.os.exit(pid, 0);
    f.os.advance(1ms);
    CHECK(f.os.take_log() == Log{"exit 1000"});
    CHECK(f.listener.last.last_reload->drain_result ==
          "exited with status 0 after draining for 499ms");
  }
}

TEST_CASE("ordering: stop during a rollback") {
  Fixture f;
  f.boot();
  auto client = f.reload();
  f.os.exit(1001, 1);  // rolled back once released...
  f.stop();            // ...but baton stops first
  CHECK(f.os.take_log() == Log{"spawn 1001", "exit 1001", "TERM 1000"});
  f.os.release(1001);
  CHECK(client->outcome->record->result == "aborted");
  CHECK(client->outcome->error ==
        "generation 2 pid 1001 exited with status 1 before READY=1; generation 1 is draining");
  CHECK(f.os.next_due() == 500ms);  // the old one's drain, and no restart
  f.os.exit(1000, 0);
  f.os.release(1000);
  CHECK(f.stopped);
  CHECK(f.os.closed);
}

TEST_CASE("ordering: the serving instance's watchdog expires during a reload") {
  Fixture f;
  f.config.watchdog_sec = 2000ms;
  f.config.ready_timeout = 5000ms;
  f.boot();
  auto client = f.reload();
  f.os.advance(2000ms);  // 1000's watchdog: the reload in progress replaces it
  CHECK(f.os.take_log() == Log{"spawn 1001"});
  f.notify(1001, "READY=1");
  CHECK(client->events == Log{"ok"});
  CHECK(f.os.take_log() == Log{"switch", "TERM 1000"});
}

TEST_CASE("ordering: the candidate's watchdog expires within min_ready") {
  Fixture f;
  f.config.watchdog_sec = 100ms;
  f.config.min_ready = 300ms;
  f.boot();
  auto client = f.reload();
  f.notify(1000, "WATCHDOG=1");
  f.notify(1001, "READY=1");
  f.os.advance(100ms);  // both watchdogs due: 1000 was fed at the same time
  CHECK(f.os.take_log() == Log{"spawn 1001", "KILL 1001"});
  f.os.advance(300ms);  // min_ready passes: no commit
  CHECK(f.listener.last.generation == 1);
  f.os.exit(1001, 0, SIGKILL);
  f.os.release(1001);
  CHECK(client->outcome->error ==
        "generation 2 pid 1001 sent no WATCHDOG=1 for 100ms within min_ready; generation 1 "
        "(pid 1000) keeps serving");
}

TEST_CASE("ordering: the serving instance crashes while a candidate is starting") {
  Fixture f;
  f.boot();
  auto client = f.reload();
  f.os.exit(1000, 1);
  CHECK(f.os.next_due() == 1000ms);  // the candidate's ready_timeout; no restart
  SUBCASE("the candidate becomes ready: committed, nothing to drain") {
    f.notify(1001, "READY=1");
    CHECK(client->events == Log{"ok"});
    CHECK(f.os.take_log() == Log{"spawn 1001", "exit 1000", "switch"});
    CHECK(f.listener.last.generation == 2);
  }
  SUBCASE("the candidate fails: rolled back, and the old generation restarts") {
    f.os.exit(1001, 1);
    f.os.release(1001);
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 exited with status 1 before READY=1; generation 1 keeps its "
          "place (no process is running; it restarts)");
    CHECK(f.os.next_due() == 100ms);
    f.os.advance(100ms);
    CHECK(f.os.take_log() == Log{"spawn 1001", "exit 1000", "exit 1001", "spawn 1002"});
    CHECK(f.listener.last.generation == 1);
    CHECK(f.listener.last.restarts == 1);
  }
}

TEST_CASE("ordering: a pid named with MAINPID= counts only while in the instance's group") {
  Fixture f;
  pid_t pid = f.start();
  f.notify(pid, "MAINPID=4000");
  f.os.groups[4000] = 4000;  // 4000 left the group (or is another process now)
  f.notify(4000, "READY=1");
  CHECK(f.state(pid) == "starting");
  f.os.groups[4000] = pid;
  f.notify(4000, "READY=1");
  CHECK(f.state(pid) == "ready");
}

// ---- Readiness checks, hooks, smoke checks and the switch -------------------

namespace {

CheckCommand command(std::string program) {
  return CheckCommand{"", {std::move(program)}, 5000ms};
}

bool has_line(const Log& lines, std::string_view needle) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

}  // namespace

TEST_CASE("readiness: an http probe decides, READY=1 does not") {
  Fixture f;
  f.config.ready.notify = false;
  f.config.ready.http = HttpCheck{};
  f.config.ready.http->path = "/health";
  pid_t pid = f.start();
  int first = f.os.pending_probe();
  f.notify(pid, "READY=1");
  CHECK(f.state(pid) == "starting");
  f.os.finish_probe(first, false, "http /health: 503 in 3ms");
  CHECK(f.state(pid) == "starting");
  CHECK(f.os.probes.empty());
  CHECK(f.os.next_due() == 250ms);  // ready.interval after the attempt began
  f.os.advance(250ms);
  int second = f.os.pending_probe();
  CHECK(second != first);
  f.os.finish_probe(second, true, "http /health: 200 in 1ms");
  CHECK(f.state(pid) == "ready");
  CHECK(f.listener.events == Log{"serving (first)"});
  CHECK(f.os.take_log() == Log{"probe 2"});
}

TEST_CASE("readiness: every check must pass, in any order") {
  Fixture f;
  f.config.ready.notify = true;
  f.config.ready.tcp = true;
  f.config.ready.exec = {"./ready-check"};
  SUBCASE("probes first, then READY=1") {
    pid_t pid = f.start();
    f.os.finish_probe(f.os.pending_probe(), true);
    f.os.finish_command(f.os.pending_command("./ready-check"), true);
    CHECK(f.state(pid) == "starting");
    f.notify(pid, "READY=1");
    CHECK(f.state(pid) == "ready");
  }
  SUBCASE("READY=1 first, then the probes (tcp before exec)") {
    pid_t pid = f.start();
    f.notify(pid, "READY=1");
    CHECK(f.state(pid) == "starting");
    CHECK(f.os.commands.empty());
    f.os.finish_probe(f.os.pending_probe(), true);
    CHECK(f.state(pid) == "starting");
    f.os.finish_command(f.os.pending_command("./ready-check"), true);
    CHECK(f.state(pid) == "ready");
  }
}

TEST_CASE("readiness: ready_timeout names what it waited for and the last results") {
  Fixture f;
  f.config.ready.notify = false;
  f.config.ready.http = HttpCheck{};
  f.config.ready.http->path = "/health";
  pid_t pid = f.start();
  for (int i = 0; i < 3; ++i) {
    f.os.finish_probe(f.os.pending_probe(), false, "http /health: 503 in 3ms");
    f.os.advance(250ms);
  }
  // Attempt 4 (begun at 750ms) is in flight when ready_timeout (1s) runs
  // out: it is cancelled.
  int inflight = f.os.pending_probe();
  f.os.advance(250ms);
  CHECK(f.state(pid) == "failing");
  CHECK(f.os.probes.empty());
  Log log = f.os.take_log();
  CHECK(log.back() == "KILL 1000");
  CHECK(std::find(log.begin(), log.end(), fmt::format("cancel {}", inflight)) != log.end());
  CHECK(f.sup->snapshot().instances.size() == 1);
  f.os.exit(pid, 0, SIGKILL);
  CHECK(f.listener.last.last_exit ==
        "pid 1000 did not pass its readiness checks within ready_timeout (1s): waiting for http "
        "/health; last: http /health: 503 in 3ms (attempt 3)");
}

TEST_CASE("readiness: a candidate's probe attempts are reported to the reload's clients") {
  Fixture f;
  f.boot();
  f.config.ready.notify = false;
  f.config.ready.http = HttpCheck{};
  f.config.ready.http->path = "/health";
  auto client = f.reload();
  f.os.finish_probe(f.os.pending_probe(), false, "http /health: 503 in 3ms");
  f.os.advance(250ms);
  f.os.finish_probe(f.os.pending_probe(), true, "http /health: 200 in 2ms");
  CHECK(has_line(client->progress_lines, "generation 2: http /health: 503 in 3ms (attempt 1)"));
  CHECK(has_line(client->progress_lines, "generation 2: http /health: 200 in 2ms (attempt 2)"));
  CHECK(client->events == Log{"ok"});
}

TEST_CASE("reload: smoke checks run in order after readiness and before the switch") {
  Fixture f;
  pid_t old = f.boot();
  f.config.smoke = {command("./smoke-home"), command("./smoke-api")};
  auto client = f.reload();
  f.notify(1001, "READY=1");
  CHECK(f.os.take_log() == Log{"spawn 1001", "run 1 ./smoke-home"});
  CHECK(f.os.commands.at(1).spec.env.back() == "BATON_SERVICE=lifecycle");
  CHECK(std::find(f.os.commands.at(1).spec.env.begin(), f.os.commands.at(1).spec.env.end(),
                  "BATON_GENERATION=2") != f.os.commands.at(1).spec.env.end());
  SUBCASE("both pass: switch, then drain") {
    f.os.finish_command(1, true);
    CHECK(f.os.take_log() == Log{"run 2 ./smoke-api"});
    CHECK(client->events.empty());
    f.os.finish_command(2, true);
    CHECK(f.os.take_log() == Log{"switch", fmt::format("TERM {}", old)});
    CHECK(client->events == Log{"ok"});
    CHECK(has_line(client->progress_lines, "smoke ./smoke-home: exited with status 0"));
  }
  SUBCASE("the second fails: the candidate is killed and the reply carries its output") {
    f.os.finish_command(1, true);
    f.os.finish_command(2, false, "exited with status 1", {"GET /api: 500", "expected 200"});
    CHECK(f.os.take_log() == Log{"run 2 ./smoke-api", "KILL 1001"});
    f.os.exit(1001, 0, SIGKILL);
    f.os.release(1001);
    REQUIRE(client->outcome);
    CHECK(client->outcome->error ==
          "generation 2 pid 1001 failed a smoke check: smoke ./smoke-api: exited with status 1 "
          "in 0ms; generation 1 (pid 1000) keeps serving");
    CHECK(client->outcome->stderr_tail == Log{"GET /api: 500", "expected 200"});
    CHECK(f.state(old) == "ready");
  }
  SUBCASE("the candidate exits during a smoke check: the check is cancelled") {
    f.os.exit(1001, 1);
    CHECK(f.os.commands.empty());
    f.os.release(1001);
    CHECK(client->outcome->ok == false);
    CHECK(f.state(old) == "ready");
  }
}

namespace {

/// The reload candidate's checks as status has them: "NAME: STATE; DETAIL".
Log candidate_checks(Fixture& f) {
  Log out;
  for (const StatusSnapshot::CheckView& c : f.sup->snapshot().candidate_checks)
    out.push_back(fmt::format("{}: {}; {}", c.name, c.state, c.detail));
  return out;
}

}  // namespace

TEST_CASE("status: the candidate's checks, where each stands as the reload runs") {
  Fixture f;
  f.boot();
  f.config.smoke = {command("./smoke-home")};
  f.config.min_ready = 500ms;
  auto checks = [&] { return candidate_checks(f); };
  auto client = f.reload();
  CHECK(checks() == Log{"ready: running; waiting for READY=1", "smoke ./smoke-home: pending; ",
                        "min_ready 500ms: pending; "});
  f.os.advance(20ms);
  f.notify(1001, "READY=1");
  CHECK(checks() == Log{"ready: passed; after 20ms", "smoke ./smoke-home: running; ",
                        "min_ready 500ms: pending; "});
  SUBCASE("they pass: the checks go with the reload") {
    f.os.finish_command(1, true);
    f.os.advance(100ms);
    CHECK(checks() == Log{"ready: passed; after 20ms",
                          "smoke ./smoke-home: passed; exited with status 0 in 0ms",
                          "min_ready 500ms: running; 400ms left"});
    f.os.advance(400ms);
    CHECK(client->events == Log{"ok"});
    CHECK(f.sup->snapshot().candidate_checks.empty());
  }
  SUBCASE("the smoke check fails: what came after it is skipped") {
    f.os.finish_command(1, false, "exited with status 1");
    CHECK(checks() == Log{"ready: passed; after 20ms",
                          "smoke ./smoke-home: failed; exited with status 1 in 0ms",
                          "min_ready 500ms: skipped; "});
  }
}

TEST_CASE("status: a pre_reload hook comes first among the checks, apart from the smoke checks") {
  Fixture f;
  f.boot();
  f.config.pre_reload = command("./migrate");
  f.config.smoke = {command("./smoke-home")};
  auto checks = [&] { return candidate_checks(f); };
  auto client = f.reload();
  CHECK(checks() == Log{"pre_reload ./migrate: running; ", "ready: pending; ",
                        "smoke ./smoke-home: pending; "});
  f.os.finish_command(1, true);
  f.notify(1001, "READY=1");
  CHECK(checks() == Log{"pre_reload ./migrate: passed; ", "ready: passed; after 0ms",
                        "smoke ./smoke-home: running; "});
  f.os.finish_command(2, false, "exited with status 1");
  CHECK(checks() == Log{"pre_reload ./migrate: passed; ", "ready: passed; after 0ms",
                        "smoke ./smoke-home: failed; exited with status 1 in 0ms"});
}

TEST_CASE("status: the last reloads, newest first; a drain ending late lands on its own") {
  Fixture f;
  pid_t first = f.boot();
  for (int k = 0; k < 6; ++k) {
    auto client = f.reload();
    f.notify(1001 + k, "READY=1");
    CHECK(client->events == Log{"ok"});
  }
  f.os.exit(first, 0);  // generation 1 drains only now, five reloads later
  f.os.release(first);
  StatusSnapshot s = f.sup->snapshot();
  REQUIRE(s.last_reload);
  CHECK(s.last_reload->generation == 7);
  REQUIRE(s.earlier_reloads.size() == kReloadHistory - 1);
  std::vector<int> generations;
  for (const ReloadRecord& r : s.earlier_reloads) generations.push_back(r.generation);
  CHECK(generations == std::vector<int>{6, 5, 4, 3});
  // The reload 1 -> 2 is no longer kept: nothing else took its drain.
  for (const ReloadRecord& r : s.earlier_reloads) CHECK(r.drain_result.empty());
  // One still kept: its record gets the drain.
  f.os.exit(1002, 0);  // generation 3, replaced by the reload to 4
  f.os.release(1002);
  s = f.sup->snapshot();
  CHECK(s.earlier_reloads[2].generation == 4);
  CHECK(s.earlier_reloads[2].drain_result.starts_with("exited with status 0"));
  CHECK(s.last_reload->drain_result.empty());
}

TEST_CASE("reload: pre_reload runs before anything starts") {
  Fixture f;
  pid_t old = f.boot();
  f.config.pre_reload = command("./migrate");
  auto client = f.reload();
  CHECK(f.os.take_log() == Log{"run 1 ./migrate"});
  SUBCASE("it passes: the candidate starts") {
    f.os.commands.at(1).line("applied 3 migrations");
    f.os.finish_command(1, true);
    CHECK(f.os.take_log() == Log{"spawn 1001"});
    CHECK(has_line(client->progress_lines, "pre_reload: applied 3 migrations"));
  }
  SUBCASE("it fails: nothing is started, the reload fails") {
    f.os.finish_command(1, false, "exited with status 2", {"migration 0042 failed"});
    CHECK(f.os.take_log().empty());
    REQUIRE(client->outcome);
    CHECK(client->outcome->error ==
          "generation 2 was not started: pre_reload ./migrate: exited with status 2 in 0ms; "
          "generation 1 (pid 1000) keeps serving");
    CHECK(client->outcome->stderr_tail == Log{"migration 0042 failed"});
    CHECK(f.state(old) == "ready");
    CHECK(f.sup->snapshot().last_reload->result == "rolled back");
  }
  SUBCASE("baton stops: the hook is killed") {
    f.stop();
    CHECK(f.os.take_log() == Log{"cancel 1", "TERM 1000"});
    CHECK(client->outcome->error ==
          "generation 2 was not started: reload aborted: baton is stopping; generation 1 is "
          "draining");
  }
}

TEST_CASE("reload: after_drained runs once no older process is left") {
  Fixture f;
  pid_t old = f.boot();
  f.config.after_drained = command("./contract");
  auto client = f.reload(/*wait=*/true);
  f.notify(1001, "READY=1");
  CHECK(f.os.take_log() == Log{"spawn 1001", "switch", "TERM 1000"});
  CHECK(client->events == Log{"draining"});
  f.os.exit(old, 0);
  CHECK(f.os.commands.empty());  // not until its handles are closed
  f.os.release(old);
  CHECK(f.os.take_log() == Log{"exit 1000", "run 1 ./contract"});
  SUBCASE("it passes: the waiting client is answered") {
    f.os.finish_command(1, true);
    CHECK(client->events == Log{"draining", "ok"});
    // Exactly once: nothing more runs on later events.
    f.notify(1001, "STATUS=x");
    CHECK(f.os.commands.empty());
  }
  SUBCASE("it fails: the client is told so") {
    f.os.finish_command(1, false, "exited with status 1", {"cannot drop column"});
    REQUIRE(client->outcome);
    CHECK(client->outcome->error ==
          "the reload to generation 2 is done, but after_drained ./contract: exited with status 1 "
          "in 0ms");
    CHECK(client->outcome->stderr_tail == Log{"cannot drop column"});
  }
  SUBCASE("baton stops while it runs: stop waits for it") {
    f.stop();
    f.os.exit(1001, 0);
    f.os.release(1001);
    CHECK_FALSE(f.stopped);
    f.os.finish_command(1, true);
    CHECK(f.stopped);
  }
}

TEST_CASE("reload: the old generation drains once its own listeners' queues have settled") {
  Fixture f;
  pid_t old = f.boot();
  f.os.queued_connections = 2;
  auto client = f.reload();
  f.notify(1001, "READY=1");
  CHECK(f.os.take_log() == Log{"spawn 1001", "switch"});
  CHECK(client->events.empty());
  CHECK(f.listener.last.generation == 2);  // switched: the new generation serves
  SUBCASE("the queue empties: drain 50ms later") {
    f.os.advance(30ms);
    f.os.queued_connections = 0;
    f.os.advance(40ms);  // empty since 30ms (seen at 40ms): not yet settled
    CHECK(f.os.take_log().empty());
    f.os.advance(40ms);
    CHECK(f.os.take_log() == Log{fmt::format("TERM {}", old)});
    CHECK(client->events == Log{"ok"});
    ReloadRecord r = *f.sup->snapshot().last_reload;
    CHECK(between_ms(r.ready_at, r.drain_sent_at) == 80);
  }
  SUBCASE("it never empties: drain after 2s anyway") {
    f.os.advance(1990ms);
    CHECK(f.os.take_log().empty());
    f.os.advance(10ms);
    CHECK(f.os.take_log() == Log{fmt::format("TERM {}", old)});
  }
  SUBCASE("baton stops meanwhile: the reload is done and everything drains") {
    f.stop();
    CHECK(client->events == Log{"ok"});
    CHECK(f.os.take_log() == Log{"TERM 1000", "TERM 1001"});
  }
  SUBCASE("the new instance exits meanwhile: it restarts after the switch") {
    f.os.exit(1001, 1);
    f.os.release(1001);
    f.os.queued_connections = 0;
    f.os.advance(50ms);  // settled: empty since the switch
    CHECK(client->events == Log{"ok"});
    CHECK(f.os.take_log() == Log{"exit 1001", "TERM 1000"});
    CHECK(f.os.next_due() == 100ms);  // restart_delay
  }
}

TEST_CASE("reload: no settle wait when the replaced generation has no process left") {
  Fixture f;
  pid_t old = f.boot();
  f.os.exit(old, 1);  // crashed: it restarts after restart_delay
  f.os.release(old);
  f.os.queued_connections = 3;
  auto client = f.reload();
  f.notify(1001, "READY=1");
  CHECK(client->events == Log{"ok"});
  CHECK(f.os.take_log() == Log{"exit 1000", "spawn 1001", "switch"});
}

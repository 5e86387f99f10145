// Canary reloads against FakeOs: the candidate gets its share once ready
// and the reload's clients are answered; promote commits it, rollback (or
// an instance that exits) takes the share back and drains it, a hold
// promotes it by itself.
#include "lifecycle_fixture.h"

namespace {

/// Generation 1 with 2 instances (1000, 1001) ready, and a canary reload
/// at 10% whose instances (1002, 1003) are ready: the canary is on.
struct Canary : Fixture {
  Canary() { config.instances = 2; }
  std::shared_ptr<Client> begin(std::optional<uint32_t> share = 1'000u) {
    start();
    notify(1000, "READY=1");
    notify(1001, "READY=1");
    auto client = reload(false, share);
    notify(1002, "READY=1");
    notify(1003, "READY=1");
    return client;
  }
};

}  // namespace

TEST_CASE("canary: once ready the candidate gets its share and the reload is answered") {
  Canary f;
  auto client = f.begin();
  CHECK(f.os.take_log() == Log{"spawn 1002", "spawn 1003", "share 1000"});
  REQUIRE(client->outcome);
  CHECK(client->outcome->ok);
  CHECK(client->outcome->message ==
        "canary: generation 2 gets 10% of new connections; `baton promote` switches every new "
        "connection to it, `baton rollback` takes its share back");
  CHECK(f.listener.last.reload_step == "canary");
  CHECK(f.listener.last.candidate_share == 1'000u);
  CHECK(f.listener.last.canary);
  CHECK(f.listener.last.generation == 1);

  SUBCASE("a reload meanwhile is refused") {
    auto next = f.reload();
    REQUIRE(next->outcome);
    CHECK(next->outcome->error ==
          "refused: generation 2 is a canary (10% of new connections); `baton promote` or `baton "
          "rollback` it first");
  }
  SUBCASE("promote: the switch, then the old generation drains") {
    auto p = f.promote();
    CHECK(f.os.take_log() == Log{"switch", "TERM 1000", "TERM 1001"});
    CHECK(p->events == Log{"ok"});
    CHECK(p->outcome->message.empty());
    CHECK(f.listener.last.generation == 2);
    CHECK_FALSE(f.listener.last.canary);
    CHECK(f.listener.last.last_reload->result == "ok");
  }
  SUBCASE("rollback: the share goes back to 0, the queues settle, the candidate drains") {
    auto r = f.rollback();
    CHECK(f.os.take_log() == Log{"share 0"});
    CHECK(f.listener.last.reload_step == "unsharing");
    f.os.advance(50ms);
    CHECK(f.os.take_log() == Log{"TERM 1002", "TERM 1003"});
    CHECK(r->events.empty());
    for (pid_t pid : {1002, 1003}) {
      f.os.exit(pid);
      f.os.release(pid);
    }
    REQUIRE(r->outcome);
    CHECK(r->outcome->ok);
    CHECK(r->outcome->message ==
          "rolled back: generation 2 is gone; generation 1 keeps serving (2 of 2 instances ready)");
    CHECK(f.listener.last.generation == 1);
    CHECK(f.listener.last.last_reload->result == "rolled back");
    CHECK(f.listener.last.last_reload->error ==
          "generation 2 was rolled back during its canary (baton rollback)");
    CHECK(f.os.take_log() == Log{"exit 1002", "exit 1003"});  // generation 1 untouched
  }
  SUBCASE("an instance of the candidate exits: rolled back by itself") {
    f.os.exit(1003, 1);
    CHECK(f.os.take_log() == Log{"exit 1003", "share 0"});
    f.os.advance(50ms);
    CHECK(f.os.take_log() == Log{"TERM 1002"});
    f.os.release(1003);
    f.os.exit(1002);
    f.os.release(1002);
    CHECK(f.listener.last.last_reload->result == "rolled back");
    CHECK(f.listener.last.last_reload->error ==
          "generation 2 pid 1003 exited with status 1 while ready during its canary");
    CHECK(f.listener.last.ready_instances == 2);
  }
}

TEST_CASE("canary: nothing to promote or roll back without one") {
  Canary f;
  f.start();
  auto p = f.promote();
  CHECK(p->outcome->error == "nothing to promote: no canary is in progress");
  f.reload();
  auto r = f.rollback();
  CHECK(r->outcome->error ==
        "nothing to roll back yet: generation 2 is being reloaded (at starting); a failure rolls "
        "it back by itself");
}

TEST_CASE("canary: [canary] in the config makes every reload one; its hold promotes it") {
  Canary f;
  f.config.canary = Config::Canary{500, 2'000ms};
  auto client = f.begin(std::nullopt);
  CHECK(f.os.take_log() == Log{"spawn 1002", "spawn 1003", "share 500"});
  CHECK(client->outcome->message.find("canary: generation 2 gets 5% of new connections; it is "
                                      "promoted after 2s if its instances stay up") == 0);
  f.os.advance(1'999ms);
  CHECK(f.os.take_log().empty());
  f.os.advance(1ms);
  CHECK(f.os.take_log() == Log{"switch", "TERM 1000", "TERM 1001"});
  CHECK(f.listener.last.generation == 2);

  SUBCASE("reload --canary overrides the share, keeps the hold") {
    Canary g;
    g.config.canary = Config::Canary{500, 2'000ms};
    g.begin(2'500u);
    CHECK(g.os.take_log() == Log{"spawn 1002", "spawn 1003", "share 2500"});
  }
}

TEST_CASE("canary: with strategy rolling every new instance starts first") {
  Canary f;
  f.config.strategy = Config::Strategy::kRolling;
  f.begin();
  CHECK(f.os.take_log() == Log{"spawn 1002", "spawn 1003", "share 1000"});
}

TEST_CASE("rollback without a canary starts the replaced generation's config and release again") {
  Fixture f;
  f.boot();
  auto none = f.rollback();
  CHECK(none->outcome->error ==
        "nothing to roll back: no reload has replaced a generation since baton started");
  f.config.command = {"app2"};
  auto reload = f.reload();
  f.notify(1001, "READY=1");
  REQUIRE(reload->events == Log{"ok"});
  REQUIRE(f.listener.last.rollback_to.size() == 1);
  CHECK(f.listener.last.rollback_to[0].generation == 1);
  f.os.take_log();
  auto back = f.rollback();
  CHECK(back->progress_lines.front().find("rollback: generation 1's release: ") == 0);
  CHECK(f.os.take_log() == Log{"spawn 1002"});
  const SpawnSpec& spec = f.os.specs.back();
  CHECK(spec.argv.back() == "app");  // generation 1's command, not the config's now
  f.notify(1002, "READY=1");
  CHECK(back->events == Log{"ok"});
  CHECK(f.listener.last.generation == 3);
  REQUIRE(f.listener.last.rollback_to.size() == 2);
  CHECK(f.listener.last.rollback_to[0].generation == 2);  // the next rollback goes forward again
}

TEST_CASE("standby: the replaced generation stays up for the window; rollback switches back") {
  Fixture f;
  f.config.standby = 10'000ms;
  f.boot();
  auto client = f.reload(true);
  f.notify(1001, "READY=1");
  CHECK(f.os.take_log() == Log{"spawn 1001", "switch"});  // no drain signal to 1000
  CHECK(client->events == Log{"ok"});                     // --wait: nothing drains
  CHECK(client->outcome->record->drain_result == "kept as a warm standby for 10s");
  REQUIRE(f.listener.last.standby);
  CHECK(f.listener.last.standby->generation == 1);
  CHECK(f.state(1000) == "ready");

  SUBCASE("rollback inside the window: one switch, no process started") {
    auto back = f.rollback();
    CHECK(f.os.take_log() == Log{"switch", "TERM 1001"});
    REQUIRE(back->outcome);
    CHECK(back->outcome->ok);
    CHECK(back->outcome->message ==
          "rolled back: generation 1 (the standby) takes every new connection, no process was "
          "started; generation 2 drains");
    CHECK(f.listener.last.generation == 1);
    CHECK_FALSE(f.listener.last.standby);  // the rolled-back generation is no standby
    CHECK(f.state(1000) == "ready");
  }
  SUBCASE("the window ends: it drains") {
    f.os.advance(9'999ms);
    CHECK(f.os.take_log().empty());
    f.os.advance(1ms);
    CHECK(f.os.take_log() == Log{"TERM 1000"});
    CHECK_FALSE(f.listener.last.standby);
  }
  SUBCASE("a reload drains it before anything joins") {
    f.reload();
    CHECK(f.os.take_log() == Log{"TERM 1000", "spawn 1002"});
  }
  SUBCASE("a standby with no instance left: rollback starts its release instead") {
    f.os.exit(1000, 1);
    f.os.release(1000);
    f.os.take_log();
    auto back = f.rollback();
    CHECK(f.os.take_log() == Log{"spawn 1002"});
    CHECK(back->progress_lines.front().find("rollback: generation 1's release: ") == 0);
  }
}

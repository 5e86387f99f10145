// The lifecycle's unit-test fixture: a Supervisor on FakeOs with a
// listener and reload clients that record what they are told.
#pragma once

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include "fake_os.h"
#include "supervisor.h"

namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    return fmt::format("{{\"{}\"}}", fmt::join(v, "\", \"")).c_str();
  }
};
}  // namespace doctest

namespace {

using namespace baton;
using namespace std::chrono_literals;
using fake::FakeOs;
using Log = std::vector<std::string>;

struct Listener final : LifecycleListener {
  void serving(bool first) override { events.push_back(first ? "serving (first)" : "serving"); }
  void reloading() override { events.push_back("reloading"); }
  void stopping() override { events.push_back("stopping"); }
  void status_changed(const StatusSnapshot& s) override { last = s; }
  Log events;
  StatusSnapshot last;
};

struct Client final : ReloadClient {
  void queued(const std::string& m) override { events.push_back("queued: " + m); }
  void progress(const std::string& m) override { progress_lines.push_back(m); }
  void draining(const ReloadRecord&) override { events.push_back("draining"); }
  void finished(const ReloadOutcome& o) override {
    events.push_back(o.ok ? "ok" : "failed: " + o.error);
    outcome = o;
  }
  Log events;
  Log progress_lines;
  std::optional<ReloadOutcome> outcome;
};

struct Fixture {
  Fixture() {
    spdlog::set_level(spdlog::level::off);  // the lifecycle logs every step
    config.name = std::string("lifecycle");
    config.command = {"app"};
    config.ready_timeout = 1000ms;
    config.drain_timeout = 500ms;
    config.restart_delay = 100ms;
    config.restart_delay_max = 10'000ms;
  }

  void make() {
    sup = std::make_unique<Supervisor>(
        os, listener, GenerationPlan{std::make_shared<const Config>(config), {}, {}},
        std::vector<std::string>{"PATH=/bin"}, "@notify",
        [this](std::shared_ptr<const Config> snapshot) -> Result<GenerationPlan> {
          if (!loads) return Error{"bad config"};
          if (snapshot) return GenerationPlan{snapshot, {}, {}};
          return GenerationPlan{std::make_shared<const Config>(config), {}, {}};
        });
  }
  /// Generation 1 started: pid 1000 is starting.
  pid_t start() {
    make();
    sup->start();
    os.take_log();
    return 1000;
  }
  /// pid 1000 is ready and serving.
  pid_t boot() {
    pid_t pid = start();
    notify(pid, "READY=1");
    return pid;
  }
  void notify(pid_t pid, std::string_view text) {
    sup->handle_notify(pid, parse_notify_message(text));
  }
  std::shared_ptr<Client> reload(bool wait = false, std::optional<uint32_t> canary = {}) {
    auto client = std::make_shared<Client>();
    sup->reload(ReloadRequest{client, wait, canary});
    return client;
  }
  std::shared_ptr<Client> promote() {
    auto client = std::make_shared<Client>();
    sup->promote(ReloadRequest{client, false, {}});
    return client;
  }
  std::shared_ptr<Client> rollback() {
    auto client = std::make_shared<Client>();
    sup->rollback(ReloadRequest{client, false, {}});
    return client;
  }
  /// pid 1000 replaced by 1001 (ready, current) and draining.
  pid_t draining() {
    boot();
    auto client = reload();
    notify(1001, "READY=1");
    REQUIRE(client->events == Log{"ok"});
    os.take_log();
    return 1000;
  }
  /// The instance's state as `status` names it in "substate", "exited" once
  /// it has left the status, "released" once it is forgotten.
  std::string state(pid_t pid) const {
    for (const InstanceView& i : sup->snapshot().instances) {
      if (i.pid == pid) return std::string(to_string(i.state));
    }
    return os.live(pid) ? "exited" : "released";
  }
  void stop() {
    sup->stop([this] { stopped = true; });
  }

  ~Fixture() { spdlog::set_level(spdlog::level::info); }

  FakeOs os;
  Listener listener;
  Config config;
  bool loads = true;
  bool stopped = false;
  std::unique_ptr<Supervisor> sup;
};

}  // namespace

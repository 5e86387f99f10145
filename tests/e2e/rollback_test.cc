// End-to-end tests of `baton rollback` outside a canary, under load: a
// release rollback starts the replaced generation's release again (the
// files it ran, even after a deploy tool swapped the `current` symlink); a
// standby rollback switches back to the warm standby without starting
// anything.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "harness.h"
#include "load_client.h"
#include "load_support.h"

using namespace e2e;
namespace fs = std::filesystem;

namespace {

/// A deploy layout: releases/vN/app (a script that runs hello as version
/// vN) and `current`, a symlink to one of them, which the config names.
class Releases {
 public:
  explicit Releases(const std::string& extra = "") : config_(dir_.file("baton.toml")) {
    for (const char* v : {"v1", "v2"}) {
      fs::create_directories(dir_.file(fmt::format("releases/{}", v)));
      std::string app =
          dir_.write(fmt::format("releases/{}/app", v),
                     fmt::format("#!/bin/sh\nHELLO_VERSION={} exec {} \"$@\"\n", v, hello_bin()));
      REQUIRE(chmod(app.c_str(), 0755) == 0);
    }
    point_current_at("v1");
    dir_.write("baton.toml",
               fmt::format("command = [\"current/app\"]\nworking_directory = \"current\"\n"
                           "control = \"control.sock\"\n{}\n"
                           "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
                           extra));
    baton_ = std::make_unique<Baton>(dir_, std::vector<std::string>{"-c", config_},
                                     dir_.file("control.sock"));
    REQUIRE(baton_->wait_ready());
    address_ = baton_->status()["sockets"][0]["address"].get<std::string>();
  }

  /// Swaps `current` to releases/`version` atomically, as deploy tools do
  /// (a new symlink renamed over the old one).
  void point_current_at(const std::string& version) {
    std::string next = dir_.file("current.next");
    fs::remove(next);
    fs::create_symlink(fmt::format("releases/{}", version), next);
    fs::rename(next, dir_.file("current"));
  }

  /// A deploy: `current` swapped to releases/v2, then `baton reload --wait`,
  /// which must succeed.
  CommandResult deploy_v2() {
    point_current_at("v2");
    CommandResult r = baton_command("reload", {"--wait"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.out, r.err);
    return r;
  }

  CommandResult baton_command(const std::string& command, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {baton_bin(), command, "-c", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  }

  /// The version the service answers with now.
  std::string version() {
    Response r = http_get(address_);
    REQUIRE_MESSAGE(r.ok, r.error);
    return r.body.substr(r.body.rfind(' ') + 1, 2);
  }

  std::string real(const std::string& name) const {
    return fs::canonical(dir_.file(name)).string();
  }
  Baton& baton() { return *baton_; }
  const std::string& address() const { return address_; }

 private:
  TempDir dir_;
  std::string config_;
  std::unique_ptr<Baton> baton_;
  std::string address_;
};

}  // namespace

TEST_CASE("release rollback after a `current` symlink swap runs the previous release's binary") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Releases service;
    auto status = service.baton().status();
    CHECK(status["release"]["executable"] == service.real("releases/v1/app"));
    CHECK(status["release"]["working_directory"] == service.real("releases/v1"));
    CHECK(status["rollback_to"].empty());
    CHECK(service.version() == "v1");
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));

    CommandResult deploy = service.deploy_v2();
    INFO(deploy.out, deploy.err);
    CHECK(service.version() == "v2");
    status = service.baton().status();
    CHECK(status["release"]["executable"] == service.real("releases/v2/app"));
    REQUIRE(status["rollback_to"].size() == 1);
    CHECK(status["rollback_to"][0]["generation"] == 1);
    CHECK(status["rollback_to"][0]["executable"] == service.real("releases/v1/app"));

    // `current` still points at v2: the rollback runs what generation 1 ran.
    CommandResult back = service.baton_command("rollback");
    INFO(back.out, back.err);
    INFO("baton's log:\n", service.baton().log());
    REQUIRE(back.exit_code == 0);
    CHECK(back.out.find(fmt::format("baton: rollback: generation 1's release: {} in {}",
                                    service.real("releases/v1/app"),
                                    service.real("releases/v1"))) == 0);
    CHECK(back.out.find("baton: reload done: generation 3") != std::string::npos);
    CHECK(service.version() == "v1");
    status = service.baton().status();
    CHECK(status["generation"] == 3);
    CHECK(status["release"]["executable"] == service.real("releases/v1/app"));
    CHECK(status["rollback_to"][0]["generation"] == 2);
    REQUIRE(traffic_flows(*load));
    finish_without_failures(*load);

    // A crash restart runs the generation's own release too.
    pid_t pid = service.baton().instance_pid("ready");
    REQUIRE(kill(pid, SIGKILL) == 0);
    REQUIRE(service.baton().wait_until([&](const nlohmann::json& s) {
      return s["restarts"] == 1 && s["instances"].size() == 1 &&
             s["instances"][0]["state"] == "ready";
    }));
    CHECK(service.version() == "v1");
  }
}

TEST_CASE("release rollback is refused, with nothing changed, when the release is gone") {
  Releases service;
  service.deploy_v2();
  std::string v1 = service.real("releases/v1/app");
  REQUIRE(fs::remove(v1));
  CommandResult back = service.baton_command("rollback");
  CHECK(back.exit_code == 1);
  CHECK(back.err == fmt::format("baton: rollback failed: refused, nothing was changed: generation "
                                "1's release is gone: {} cannot be executed\n",
                                v1));
  CHECK(service.baton().status()["generation"] == 2);
  CHECK(service.version() == "v2");
}

TEST_CASE("standby rollback: every new connection goes to the old pid at once, nothing starts") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    Releases service("standby = \"1m\"");
    pid_t old = service.baton().instance_pid("ready");
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    CommandResult deploy = service.deploy_v2();
    INFO(deploy.out, deploy.err);
    CHECK(deploy.out.find("baton: generation 1 stays up as a warm standby for 1m0s") !=
          std::string::npos);
    auto status = service.baton().status();
    REQUIRE(status["standby"].is_object());
    CHECK(status["standby"]["generation"] == 1);
    CHECK(status["standby"]["ready_instances"] == 1);
    pid_t current = -1;
    for (const auto& i : status["instances"]) {
      if (i["generation"] == 2) current = i["pid"].get<pid_t>();
    }
    for (int i = 0; i < 20; ++i) REQUIRE(service.version() == "v2");  // none reach the standby

    CommandResult back = service.baton_command("rollback");
    INFO(back.out, back.err);
    INFO("baton's log:\n", service.baton().log());
    REQUIRE(back.exit_code == 0);
    CHECK(back.out.find("baton: rolled back: generation 1 (the standby) takes every new "
                        "connection, no process was started; generation 2 drains") !=
          std::string::npos);
    for (int i = 0; i < 20; ++i) {
      Response r = http_get(service.address());
      REQUIRE(r.ok);
      CHECK(r.body.find(fmt::format("hello from pid {} version v1", old)) == 0);
    }
    status = service.baton().status();
    CHECK(status["generation"] == 1);
    CHECK(status["restarts"] == 0);
    CHECK(status["standby"].is_null());
    for (const auto& i : status["instances"]) {  // no process was started
      pid_t pid = i["pid"].get<pid_t>();
      CHECK((pid == old || pid == current));
    }
    REQUIRE(traffic_flows(*load));
    finish_without_failures(*load);
  }
}

TEST_CASE("standby: a unix socket cannot be switched back to, so it drains as before") {
  TempDir dir;
  dir.write("baton.toml",
            fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\nstandby = \"1m\"\n"
                        "[[socket]]\nname = \"http\"\nlisten = \"unix:app.sock\"\n",
                        hello_bin()));
  Baton baton(dir, {"-c", dir.file("baton.toml")}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  CommandResult r = run_command({baton_bin(), "reload", "-c", dir.file("baton.toml")}, 60s);
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("baton: generation 1 is not kept as a standby: socket 'http' is a unix socket: "
                   "its path has one owner at a time; it drains") != std::string::npos);
  CHECK(baton.status()["standby"].is_null());
}

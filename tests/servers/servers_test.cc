// The recipes of docs/servers.md, each run under baton and reloaded under
// load (recipe.h), and the checks that tie docs/servers.md and the preset
// table (supervisor/server_presets.cc) to the files the recipes run.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "recipe.h"
#include "supervisor/config.h"
#include "supervisor/server_presets.h"

using servers::DrainMarker;
using servers::InFlight;
using servers::KeepAlive;
using servers::Recipe;
using servers::run_recipe;

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("gunicorn: LISTEN_FDS, sync workers, an http probe, SIGTERM") {
  run_recipe({.name = "gunicorn",
              .dirs = {"gunicorn"},
              .binaries = {"/usr/bin/gunicorn"},
              .keep_alive = KeepAlive::kNone,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "Handling signal: term"},
              .pid_in_body = true});
}

TEST_CASE("uvicorn: fd 3 through serve.py, an http probe, SIGTERM") {
  run_recipe({.name = "uvicorn",
              .dirs = {"uvicorn"},
              .binaries = {"/usr/bin/python3", "/usr/bin/uvicorn"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "Shutting down"},
              .pid_in_body = true});
}

TEST_CASE("hypercorn: --bind fd://3, an http probe, SIGTERM") {
  run_recipe({.name = "hypercorn",
              .dirs = {"hypercorn"},
              .binaries = {"/usr/bin/hypercorn"},
              .keep_alive = KeepAlive::kDroppedAfterEachResponse,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {},  // it logs nothing: its listener closes
              .pid_in_body = true});
}

TEST_CASE("uwsgi: LISTEN_FDS, --protocol http, READY=1, SIGHUP with --exit-on-reload") {
  run_recipe({.name = "uwsgi",
              .dirs = {"uwsgi"},
              .binaries = {"/usr/bin/uwsgi", "/usr/lib/uwsgi/plugins/python3_plugin.so"},
              .keep_alive = KeepAlive::kNone,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "gracefully killing workers"},
              .pid_in_body = true});
}

TEST_CASE("nginx: the NGINX variable hands it fd 3, an http probe, SIGQUIT") {
  run_recipe({.name = "nginx",
              .dirs = {"nginx"},
              .binaries = {"/usr/sbin/nginx"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kPartialRequest,
              .drain_started = {.text = "gracefully shutting down"},
              .nonblocking_listener = true});
}

TEST_CASE("haproxy: bind fd@3, one process, an http probe, SIGUSR1, idle-close-on-response") {
  run_recipe({.name = "haproxy",
              .dirs = {"haproxy"},
              .binaries = {"/usr/sbin/haproxy"},
              .keep_alive = KeepAlive::kAnsweredWithClose,
              .in_flight = InFlight::kPartialRequest,
              .drain_started = {.text = "Proxy www stopped"}});
}

TEST_CASE("lighttpd: systemd socket activation, an http probe, SIGINT") {
  run_recipe({.name = "lighttpd",
              .dirs = {"lighttpd"},
              .binaries = {"/usr/sbin/lighttpd"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kPartialRequest,
              .drain_started = {.text = "graceful shutdown started"}});
}

TEST_CASE("apache2: the shim, a pid file per generation, SIGWINCH") {
  run_recipe({.name = "apache2",
              .dirs = {"apache2"},
              .binaries = {"/usr/sbin/apache2"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kPartialRequest,
              .drain_started = {.text = "caught SIGWINCH, shutting down gracefully"},
              .world_readable = true});
}

TEST_CASE("puma: LISTEN_FDS, READY=1 from its systemd plugin, SIGTERM") {
  run_recipe({.name = "puma",
              .dirs = {"puma"},
              .binaries = {"/usr/bin/puma"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "Gracefully shutting down workers"},
              .pid_in_body = true});
}

TEST_CASE("twisted: the systemd endpoint, an http probe, SIGTERM") {
  run_recipe({.name = "twisted",
              .dirs = {"twisted"},
              .binaries = {"/usr/bin/twist3"},
              .keep_alive = KeepAlive::kClosedAtDrain,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "Received SIGTERM, shutting down."},
              .drain_exit = "was killed by SIGTERM",
              .pid_in_body = true});
}

TEST_CASE("node: listen({fd: 3}), an http probe, SIGTERM drained by the app") {
  run_recipe({.name = "node",
              .dirs = {"node"},
              .binaries = {"/usr/bin/node"},
              .keep_alive = KeepAlive::kAnsweredWithClose,
              .in_flight = InFlight::kHeldResponse,
              .drain_started = {.text = "draining"},
              .pid_in_body = true});
}

TEST_CASE("python3 -m http.server: the shim, SIGTERM") {
  run_recipe({.name = "http.server",
              .dirs = {"http.server"},
              .binaries = {"/usr/bin/python3"},
              .keep_alive = KeepAlive::kNone,
              .in_flight = InFlight::kPartialRequest,
              .drain_started = {.text = "baton-shim: draining"},
              .drain_exit = "was killed by SIGTERM"});
}

TEST_CASE("docs/servers.md quotes every recipe file as the tests run it") {
  const std::string doc = read_text(fs::path(SOURCE_DIR) / "docs/servers.md");
  REQUIRE_FALSE(doc.empty());
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(servers::configs_dir())) {
    if (!entry.is_regular_file()) continue;
    if (entry.path().parent_path().filename() == "www") continue;  // one-line pages
    CAPTURE(entry.path().string());
    CHECK(doc.find(read_text(entry.path())) != std::string::npos);
    ++files;
  }
  CHECK(files > 12);

  // Each "Tested by: `NAME`" names a test case of this file.
  const std::string tests = read_text(fs::path(SOURCE_DIR) / "tests/servers/servers_test.cc");
  const std::regex tested_by("Tested by: `([^`]+)`");
  int named = 0;
  for (std::sregex_iterator m(doc.begin(), doc.end(), tested_by), end; m != end; ++m, ++named) {
    CAPTURE((*m)[1].str());
    CHECK(tests.find("TEST_CASE(\"" + (*m)[1].str() + "\")") != std::string::npos);
  }
  CHECK(named == 12);
}

TEST_CASE("every server preset is a recipe's, with the signal its config names") {
  // `server = "nginx"          # drain_signal SIGQUIT: ...` in a recipe's baton.toml.
  const std::regex preset_line(R"re(\nserver = "([\w.]+)" +# drain_signal (\w+))re");
  std::set<std::string> used;
  for (const auto& entry : fs::recursive_directory_iterator(servers::configs_dir())) {
    if (entry.path().filename() != "baton.toml") continue;
    const std::string text = read_text(entry.path());
    CAPTURE(entry.path().string());
    CHECK_FALSE(std::regex_search(text, std::regex("\ndrain_signal")));  // presets only
    for (std::sregex_iterator m(text.begin(), text.end(), preset_line), end; m != end; ++m) {
      const baton::ServerPreset* preset = baton::find_server_preset((*m)[1].str());
      REQUIRE(preset != nullptr);
      auto signal = baton::parse_signal((*m)[2].str());
      REQUIRE(signal.ok());
      CHECK(preset->drain_signal == *signal);
      used.insert(std::string(preset->name));
    }
  }
  for (const baton::ServerPreset& p : baton::server_presets()) {
    CAPTURE(p.name);
    CHECK(used.count(std::string(p.name)) == 1);
    CHECK_FALSE(p.why.empty());
  }
}

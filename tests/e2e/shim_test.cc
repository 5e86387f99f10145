// End-to-end tests of `baton run --shim`: programs that bind their own port
// (examples/legacy, an epoll server, python3's http.server) are handed off
// across reloads under load without losing a request; programs the shim
// cannot reach are refused with a clear message.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include <fmt/format.h>

#include "harness.h"
#include "load_client.h"
#include "load_support.h"

using namespace e2e;

namespace {

std::string legacy_bin() {
  return LEGACY_BIN;
}
std::string legacy_static_bin() {
  return LEGACY_STATIC_BIN;
}
std::string epoll_app_bin() {
  return EPOLL_APP_BIN;
}

/// A config running `command` (TOML array items, PORT replaced) under the
/// shim on 127.0.0.1:PORT.
std::string write_shim_config(const TempDir& dir, int port, const std::string& command) {
  std::string cmd = command;
  for (size_t at; (at = cmd.find("PORT")) != std::string::npos;) {
    cmd.replace(at, 4, std::to_string(port));
  }
  return dir.write("baton.toml",
                   fmt::format("command = [{}]\ncontrol = \"control.sock\"\nshim = true\n"
                               "working_directory = \"{}\"\nready_timeout = \"10s\"\n"
                               "drain_timeout = \"10s\"\n"
                               "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:{}\"\n",
                               cmd, dir.path(), port));
}

/// Runs `reloads` reloads of the shim service under load (one connection per
/// request) and checks that no request failed and every generation served
/// (when `pids_in_body`: the app names its pid in each response).
void reload_under_load(const std::string& command, int reloads, bool pids_in_body) {
  TempDir dir;
  int port = free_port();
  std::string config = write_shim_config(dir, port, command);
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready(20s));
  INFO(baton.log());
  std::string address = fmt::format("127.0.0.1:{}", port);
  auto load = start_load(address);
  load::LoadRun& run = *load;
  REQUIRE(traffic_flows(run));

  std::set<pid_t> generations = {baton.instance_pid("ready")};
  for (int i = 0; i < reloads; ++i) {
    CommandResult r = run_command({baton_bin(), "reload", "-c", config}, 60s);
    INFO("reload ", i + 1, ": ", r.out, r.err);
    REQUIRE(r.exit_code == 0);
    pid_t pid = baton.instance_pid("ready");
    generations.insert(pid);
    if (pids_in_body) {
      REQUIRE(eventually([&] { return run.has_served(pid); }));
    } else {
      REQUIRE(traffic_flows(run, 20));
    }
  }
  load::LoadResult result = finish_without_failures(run);
  CHECK(generations.size() == static_cast<size_t>(reloads + 1));
  if (pids_in_body) {
    std::set<pid_t> served;
    for (const auto& [pid, count] : result.pids) served.insert(pid);
    CHECK(served == generations);
  }
}

}  // namespace

TEST_CASE("20 reloads of a legacy server under the shim: 0 failed requests, 20 new pids") {
  reload_under_load(fmt::format("\"{}\", \"--port\", \"PORT\"", legacy_bin()), 20, true);
}

TEST_CASE("20 reloads of an epoll server with non-blocking accept under the shim: 0 failed") {
  reload_under_load(fmt::format("\"{}\", \"--port\", \"PORT\"", epoll_app_bin()), 20, true);
}

TEST_CASE("20 reloads of python3 -m http.server under the shim: 0 failed") {
  REQUIRE(path_exists("/usr/bin/python3"));
  reload_under_load(
      "\"/usr/bin/python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", "
      "\"PORT\"",
      20, false);
}

TEST_CASE("a static binary is refused under --shim, by run and by check") {
  TempDir dir;
  int port = free_port();
  CommandResult run = run_command(
      {baton_bin(), "run", "--shim", "--listen", fmt::format("http=tcp://127.0.0.1:{}", port),
       "--control", dir.file("c.sock"), "--", legacy_static_bin(), "--port", std::to_string(port)});
  CHECK(run.exit_code == 1);
  CHECK(run.err == fmt::format("baton: shim: {} is statically linked: LD_PRELOAD cannot reach it, "
                               "so the shim cannot hand it baton's sockets\n",
                               legacy_static_bin()));
  CHECK_FALSE(path_exists(dir.file("c.sock")));

  std::string config = write_shim_config(
      dir, port, fmt::format("\"{}\", \"--port\", \"PORT\"", legacy_static_bin()));
  CommandResult check = run_command({baton_bin(), "check", "-c", config});
  CHECK(check.exit_code == 1);
  CHECK(check.err.find("is statically linked: LD_PRELOAD cannot reach it") != std::string::npos);
}

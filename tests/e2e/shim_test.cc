// End-to-end tests of `baton run --shim`: programs that bind their own port
// (examples/legacy, an epoll server, python3's http.server, a keep-alive
// server with its own SIGTERM handler, uvicorn, node, #! scripts) are handed
// off across reloads under load without losing a request, and the old ones
// end by themselves; programs the shim cannot reach are refused with a
// clear message.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
std::string keepalive_app_bin() {
  return KEEPALIVE_APP_BIN;
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

/// Writes an executable file `name` in `dir`; its path.
std::string write_program(const TempDir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.write(name, text);
  REQUIRE(chmod(path.c_str(), 0755) == 0);
  return path;
}

/// `baton reload --wait`, then what the last reload says of the old
/// generation: it was `old`, and it ended as `ended` ("exited with status
/// 0", "was killed by SIGTERM") by itself, in well under drain_timeout
/// (10s). Returns the new generation's pid.
pid_t reload_and_expect_drained(Baton& baton, const std::string& config, const std::string& ended) {
  pid_t old = baton.instance_pid("ready");
  CommandResult r = run_command({baton_bin(), "reload", "--wait", "-c", config}, 60s);
  INFO("reload: ", r.out, r.err);
  REQUIRE(r.exit_code == 0);
  nlohmann::json last = baton.status()["last_reload"];
  INFO("last reload: ", last.dump());
  CHECK(last["replaced_pid"] == old);
  CHECK(last["drain_result"].get<std::string>().starts_with(ended + " after draining for "));
  CHECK(last["drain_ms"].get<int64_t>() < 2000);
  CHECK_FALSE(process_exists(old));
  pid_t pid = baton.instance_pid("ready");
  CHECK(pid != old);
  return pid;
}

/// Opens a keep-alive connection to `address` and makes one request on it
/// (HTTP/1.1, no "Connection: close"); the connection, left open and idle,
/// once the whole response (Content-Length) has arrived.
int idle_keep_alive_connection(const std::string& address) {
  int fd = connect_stream(address);
  REQUIRE(fd >= 0);
  const std::string request = "GET / HTTP/1.1\r\nHost: baton-test\r\n\r\n";
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string in;
  auto deadline = Clock::now() + 5s;
  char buf[4096];
  for (;;) {
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = in.substr(0, end + 2);
      for (char& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      size_t at = head.find("\r\ncontent-length:");
      REQUIRE(at != std::string::npos);
      size_t length = std::stoul(head.substr(at + 17));
      if (in.size() >= end + 4 + length) {
        CHECK(head.starts_with("http/1.1 200 "));
        CHECK(in.size() == end + 4 + length);
        return fd;
      }
    }
    REQUIRE(wait_fd(fd, POLLIN, deadline) > 0);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    in.append(buf, static_cast<size_t>(n));
  }
}

/// True if the server closes `fd` before `deadline` without sending more.
bool closed_by_server(int fd, Clock::time_point deadline) {
  char c;
  return wait_fd(fd, POLLIN, deadline) > 0 && recv(fd, &c, 1, 0) == 0;
}

/// An ASGI app for uvicorn: "hello from pid P" to every request.
constexpr const char* kAsgiApp = R"(import os
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b"hello from pid %d\n" % os.getpid()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
)";

/// node's http server, without a SIGTERM listener of its own (node's
/// default then ends it by the signal) or, with "close" as its second
/// argument, with one that calls server.close() (which closes idle
/// keep-alive connections, and node exits once the rest are done).
constexpr const char* kNodeServer = R"(const http = require('http');
const body = 'hello from pid ' + process.pid + '\n';
const server = http.createServer((req, res) => {
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
});
server.listen(parseInt(process.argv[2]), '127.0.0.1');
if (process.argv[3] === 'close') process.on('SIGTERM', () => server.close());
)";

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

TEST_CASE(
    "keep-alive load across reloads under the shim of a server with its own SIGTERM handler") {
  // keepalive_app closes keep-alive connections only once it has SIGTERM,
  // so the shim must pass the signal on while they are open.
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    TempDir dir;
    int port = free_port();
    std::string config = write_shim_config(
        dir, port, fmt::format("\"{}\", \"--port\", \"PORT\"", keepalive_app_bin()));
    Baton baton(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(baton.wait_ready(20s));
    INFO(baton.log());
    auto load = start_load(fmt::format("127.0.0.1:{}", port), mode);
    REQUIRE(traffic_flows(*load));
    std::set<pid_t> generations = {baton.instance_pid("ready")};
    for (int i = 0; i < 3; ++i) {
      pid_t pid = reload_and_expect_drained(baton, config, "exited with status 0");
      generations.insert(pid);
      REQUIRE(eventually([&] { return load->has_served(pid); }));
    }
    load::LoadResult result = finish_without_failures(*load);
    std::set<pid_t> served;
    for (const auto& [pid, count] : result.pids) served.insert(pid);
    CHECK(served == generations);
  }
}

TEST_CASE("uvicorn under the shim: idle keep-alive connections closed at the drain, 0 failed") {
  // /usr/bin/uvicorn is a #! script run by python3. uvicorn closes its idle
  // keep-alive connections when it gets SIGTERM; 60 s is their own timeout.
  REQUIRE(path_exists("/usr/bin/uvicorn"));
  TempDir dir;
  dir.write("app.py", kAsgiApp);
  int port = free_port();
  std::string config = write_shim_config(
      dir, port,
      "\"/usr/bin/uvicorn\", \"app:app\", \"--host\", \"127.0.0.1\", \"--port\", \"PORT\", "
      "\"--timeout-keep-alive\", \"60\"");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready(20s));
  INFO(baton.log());
  std::string address = fmt::format("127.0.0.1:{}", port);
  auto load = start_load(address);
  REQUIRE(traffic_flows(*load));
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(idle_keep_alive_connection(address));
  pid_t pid = reload_and_expect_drained(baton, config, "exited with status 0");
  for (int fd : idle) {
    CHECK(closed_by_server(fd, Clock::now() + 1s));  // already: the old one has exited
    close(fd);
  }
  REQUIRE(eventually([&] { return load->has_served(pid); }));
  finish_without_failures(*load);
}

TEST_CASE("node under the shim drains without SIGKILL: libuv's raw close uncounts connections") {
  REQUIRE(path_exists("/usr/bin/node"));
  TempDir dir;
  dir.write("server.js", kNodeServer);
  int port = free_port();
  std::string address = fmt::format("127.0.0.1:{}", port);
  SUBCASE("node's default SIGTERM action: the drain waits for the connections, then it ends") {
    std::string config = write_shim_config(dir, port, "\"/usr/bin/node\", \"server.js\", \"PORT\"");
    Baton baton(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(baton.wait_ready(20s));
    INFO(baton.log());
    auto load = start_load(address);
    REQUIRE(traffic_flows(*load));
    for (int i = 0; i < 3; ++i) {
      pid_t pid = reload_and_expect_drained(baton, config, "was killed by SIGTERM");
      REQUIRE(eventually([&] { return load->has_served(pid); }));
    }
    finish_without_failures(*load);
  }
  SUBCASE("server.close() on SIGTERM: idle keep-alive connections closed, exit 0") {
    std::string config =
        write_shim_config(dir, port, "\"/usr/bin/node\", \"server.js\", \"PORT\", \"close\"");
    Baton baton(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(baton.wait_ready(20s));
    INFO(baton.log());
    auto load = start_load(address);
    REQUIRE(traffic_flows(*load));
    std::vector<int> idle;
    for (int i = 0; i < 3; ++i) idle.push_back(idle_keep_alive_connection(address));
    pid_t pid = reload_and_expect_drained(baton, config, "exited with status 0");
    for (int fd : idle) {
      CHECK(closed_by_server(fd, Clock::now() + 1s));
      close(fd);
    }
    REQUIRE(eventually([&] { return load->has_served(pid); }));
    finish_without_failures(*load);
  }
}

TEST_CASE("a #! script under the shim is followed to its interpreter and served across reloads") {
  TempDir scripts;
  std::string script = write_program(
      scripts, "serve", fmt::format("#!/bin/sh\nexec {} --port \"$1\"\n", legacy_bin()));
  reload_under_load(fmt::format("\"{}\", \"PORT\"", script), 5, true);
}

TEST_CASE("a #! script under the shim whose interpreter is static is refused by run and check") {
  TempDir dir;
  int port = free_port();
  std::string script =
      write_program(dir, "serve", fmt::format("#!{} --port\n", legacy_static_bin()));
  std::string reason = fmt::format(
      "shim: {} (the #! interpreter of {}) is statically linked: LD_PRELOAD cannot "
      "reach it, so the shim cannot hand it baton's sockets",
      legacy_static_bin(), script);
  CommandResult run = run_command({baton_bin(), "run", "--shim", "--listen",
                                   fmt::format("http=tcp://127.0.0.1:{}", port), "--control",
                                   dir.file("c.sock"), "--", script, std::to_string(port)});
  CHECK(run.exit_code == 1);
  CHECK(run.err == "baton: " + reason + "\n");
  CHECK_FALSE(path_exists(dir.file("c.sock")));

  // Through env and a second script, as `baton check` reports it.
  std::string outer = write_program(dir, "outer", fmt::format("#!/usr/bin/env {}\n", script));
  std::string config = write_shim_config(dir, port, fmt::format("\"{}\"", outer));
  CommandResult check = run_command({baton_bin(), "check", "-c", config});
  CHECK(check.exit_code == 1);
  CHECK(check.err ==
        fmt::format("{}: shim: {} (the #! interpreter of {}, through /usr/bin/env, through {}) is "
                    "statically linked: LD_PRELOAD cannot reach it, so the shim cannot hand it "
                    "baton's sockets\n",
                    config, legacy_static_bin(), outer, script));
}

// End-to-end tests of `baton run`, `status`, `stop` and `check`: the real
// binary, real sockets on loopback, exact outcomes.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "harness.h"

using namespace e2e;

namespace {

/// A config running `command` on `sockets` (TOML [[socket]] bodies), with
/// the control socket in the test's directory.
std::string write_config(const TempDir& dir, const std::string& command,
                         const std::vector<std::pair<std::string, std::string>>& sockets,
                         const std::string& extra = "") {
  std::string text =
      fmt::format("command = [{}]\ncontrol = \"control.sock\"\n{}\n", command, extra);
  for (const auto& [name, url] : sockets) {
    text += fmt::format("[[socket]]\nname = \"{}\"\nlisten = \"{}\"\n", name, url);
  }
  return dir.write("baton.toml", text);
}

std::string hello_command() {
  return fmt::format("\"{}\"", hello_bin());
}

std::map<std::string, std::string> read_report(const std::string& path) {
  std::map<std::string, std::string> report;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) report[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return report;
}

std::string address_of(const nlohmann::json& status, const std::string& name) {
  for (const auto& s : status["sockets"]) {
    if (s["name"] == name) return s["address"].get<std::string>();
  }
  return "";
}

std::string hello_body(pid_t pid, const std::string& version = "1") {
  return fmt::format("hello from pid {} version {}\n", pid, version);
}

}  // namespace

TEST_CASE("the app receives exactly the configured sockets as fds 3.. with LISTEN_* set") {
  TempDir dir;
  std::string report = dir.file("report");
  std::string config = write_config(dir, fmt::format("\"{}\", \"first arg\"", probe_bin()),
                                    {{"v4", "tcp://127.0.0.1:0"},
                                     {"v6", "tcp://[::1]:0"},
                                     {"path", "unix:app.sock"},
                                     {"abstract", fmt::format("unix:@baton-e2e-{}", getpid())},
                                     {"dgram", "udp://127.0.0.1:0"}},
                                    fmt::format("[environment]\nPROBE_OUT = \"{}\"\n", report));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  REQUIRE(app > 0);

  auto r = read_report(report);
  CHECK(r["pid"] == std::to_string(app));
  CHECK(r["fds"] == "0,1,2,3,4,5,6,7");
  CHECK(r["LISTEN_FDS"] == "5");
  CHECK(r["LISTEN_PID"] == std::to_string(app));
  CHECK(r["LISTEN_FDNAMES"] == "v4:v6:path:abstract:dgram");
  // A socket file beside the control socket, which every sd_notify library
  // can reach (not only those that know abstract names).
  CHECK(r["NOTIFY_SOCKET"] == dir.file("control.sock") + ".notify");
  struct stat st;
  REQUIRE(stat(r["NOTIFY_SOCKET"].c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK(r["arg"] == "first arg");
  CHECK(r["BATON_SERVICE"] == "baton");
  CHECK(r["BATON_GENERATION"] == "1");
  CHECK(r["BATON_INSTANCE"] == "1");
  CHECK(r["open /dev/stdout"] == "ok");
  CHECK(r["open /dev/stderr"] == "ok");

  // Seen from outside: stdin is /dev/null, stdout and stderr are pipes to
  // baton, and fds 3..7 are the very sockets baton holds (same inodes),
  // nothing else. The test runner may itself have inherited stray fds:
  // baton must not pass them on.
  CHECK(open_fds(app) == std::set<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(fd_link(app, 0) == "/dev/null");
  CHECK(fd_link(app, 1).starts_with("pipe:"));
  CHECK(fd_link(app, 2).starts_with("pipe:"));
  std::set<std::string> baton_fds;
  for (int fd : open_fds(baton.pid())) baton_fds.insert(fd_link(baton.pid(), fd));
  for (int fd = 3; fd <= 7; ++fd) {
    INFO("fd ", fd);
    CHECK(fd_link(app, fd).starts_with("socket:"));
    CHECK(baton_fds.count(fd_link(app, fd)) == 1);
  }
}

TEST_CASE("a request through each socket kind is answered: tcp v4, tcp v6, unix, udp") {
  TempDir dir;
  std::string config = write_config(dir, hello_command(),
                                    {{"v4", "tcp://127.0.0.1:0"},
                                     {"v6", "tcp://[::1]:0"},
                                     {"unix", "unix:hello.sock"},
                                     {"udp", "udp://127.0.0.1:0"}},
                                    "[environment]\nHELLO_VERSION = \"e2e\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  auto status = baton.status();
  pid_t app = baton.instance_pid("ready");

  for (const char* name : {"v4", "v6", "unix"}) {
    INFO("socket ", name, " at ", address_of(status, name));
    Response r = http_get(address_of(status, name));
    CHECK(r.error == "");
    CHECK(r.status == 200);
    CHECK(r.body == hello_body(app, "e2e"));
  }
  CHECK(address_of(status, "unix") == dir.file("hello.sock"));
  Response udp = udp_request(address_of(status, "udp"), "ping");
  CHECK(udp.error == "");
  CHECK(udp.body == hello_body(app, "e2e"));

  // The app's output is logged with its generation and pid.
  CHECK(baton.log().find(fmt::format("[gen 1 pid {}] hello: version e2e pid {} ready", app, app)) !=
        std::string::npos);
}

TEST_CASE("a crashed app is restarted and a client that connected during the gap is served") {
  TempDir dir;
  std::string config = write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}},
                                    "restart_delay = \"500ms\"");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  std::string address = address_of(baton.status(), "http");
  pid_t first = baton.instance_pid("ready");
  REQUIRE(first > 0);

  REQUIRE(kill(first, SIGKILL) == 0);
  REQUIRE(baton.wait_until(restarting(1)));
  int fd = connect_stream(address);
  REQUIRE(fd >= 0);
  // Connected while no app process ran: baton had not yet started the next one.
  CHECK_FALSE(baton.notify().next(0ms).has_value());

  Response r = http_get_on(fd);
  CHECK(r.error == "");
  pid_t second = baton.instance_pid("ready");
  CHECK(second != first);
  CHECK(r.body == hello_body(second));
  CHECK(baton.status()["restarts"] == 1);
  CHECK(baton.log().find(fmt::format("pid {} was killed by SIGKILL while ready", first)) !=
        std::string::npos);
}

TEST_CASE("baton stop drains the app and leaves no process and no socket file behind") {
  TempDir dir;
  std::string config = write_config(dir, hello_command(),
                                    {{"http", "tcp://127.0.0.1:0"}, {"unix", "unix:app.sock"}});
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  REQUIRE(path_exists(dir.file("app.sock")));
  REQUIRE(path_exists(dir.file("control.sock")));

  CommandResult stop = run_command({baton_bin(), "stop", "-c", config});
  CHECK(stop.exit_code == 0);
  CHECK(stop.out == "baton: stopping (draining the app)\nbaton: stopped\n");
  CHECK(baton.wait_exit() == 0);
  CHECK_FALSE(process_exists(app));
  CHECK_FALSE(path_exists(dir.file("app.sock")));
  CHECK_FALSE(path_exists(dir.file("control.sock")));
  CHECK_FALSE(path_exists(dir.file("control.sock.notify")));
  CHECK(baton.log().find(fmt::format("pid {} exited with status 0 after draining", app)) !=
        std::string::npos);
}

TEST_CASE("[metrics] file: written at start, rewritten with a reload's count, gone at stop") {
  TempDir dir;
  std::string prom = dir.file("baton.prom");
  std::string config = write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}},
                                    "[metrics]\nfile = \"baton.prom\"\ninterval = \"1s\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  REQUIRE(path_exists(prom));  // written as baton starts, before the app is ready
  CHECK(read_file(prom).find("baton_reloads_total{result=\"ok\"} 0\n") != std::string::npos);
  REQUIRE(run_command({baton_bin(), "reload", "-c", config}).exit_code == 0);
  // Rewritten within the interval (1s), never seen half written.
  std::string text;
  CHECK(eventually(
      [&] {
        text = read_file(prom);
        REQUIRE(text.ends_with("\n"));
        return text.find("baton_reloads_total{result=\"ok\"} 1\n") != std::string::npos;
      },
      5s));
  CHECK(text.find("baton_generation 2\n") != std::string::npos);
  CHECK(baton.log().find(fmt::format("metrics: writing {} every 1s", prom)) != std::string::npos);
  CHECK(run_command({baton_bin(), "stop", "-c", config}).exit_code == 0);
  CHECK(baton.wait_exit() == 0);
  CHECK_FALSE(path_exists(prom));
  CHECK_FALSE(path_exists(prom + ".tmp"));
}

TEST_CASE("notify_socket = \"abstract\": the app gets an abstract NOTIFY_SOCKET, no file") {
  TempDir dir;
  std::string report = dir.file("report");
  std::string config = write_config(
      dir, fmt::format("\"{}\"", probe_bin()), {{"http", "tcp://127.0.0.1:0"}},
      fmt::format("notify_socket = \"abstract\"\n[environment]\nPROBE_OUT = \"{}\"\n", report));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  CHECK(read_report(report)["NOTIFY_SOCKET"].starts_with("@baton/"));
  CHECK_FALSE(path_exists(dir.file("control.sock.notify")));
}

TEST_CASE("a command that cannot be executed is started once, not in a loop") {
  TempDir dir;
  // What a missing program, interpreter or library ends in: exit 127.
  std::string script = dir.write("app.sh", "#!/bin/sh\nexec /nonexistent/app\n");
  chmod(script.c_str(), 0755);
  std::string config = write_config(dir, fmt::format("\"{}\"", script),
                                    {{"http", "tcp://127.0.0.1:0"}}, "restart_delay = \"10ms\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_until([](const nlohmann::json& s) {
    return s["last_exit"].is_object() &&
           s["last_exit"]["reason"].get<std::string>().find("not restarted") != std::string::npos;
  }));
  nlohmann::json s = baton.status();
  CHECK(s["restarts"] == 0);
  CHECK(s["next_start_in_ms"].is_null());
  CHECK(s["last_exit"]["reason"].get<std::string>().find("exited with status 127") !=
        std::string::npos);
  CHECK(baton.log().find("not restarting it: the command cannot be executed") != std::string::npos);
}

TEST_CASE("an app's listen() on the shared socket shows in status and is undone for the next") {
  TempDir dir;
  // Generation 1 calls listen(16) on baton's socket, as gunicorn and node
  // call listen() with a backlog of their own.
  std::string app = dir.write("app.py", R"(import os, signal, socket
sock = socket.socket(fileno=3)
if os.environ["BATON_GENERATION"] == "1":
    sock.listen(16)
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
signal.sigwait([signal.SIGTERM])
)");
  std::string config = write_config(dir, fmt::format("\"python3\", \"{}\"", app),
                                    {{"http", "tcp://127.0.0.1:0"}}, "listeners = \"shared\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  nlohmann::json s = baton.status();
  REQUIRE(s["sockets"][0].contains("backlog_changed"));
  CHECK(s["sockets"][0]["backlog_changed"].get<std::string>().starts_with(
      "the app changed its backlog to 16 (baton's: "));
  CommandResult text = run_command({baton_bin(), "status", "-c", config});
  CHECK(text.out.find("the app changed its backlog to 16") != std::string::npos);

  CommandResult reload = run_command({baton_bin(), "reload", "-c", config});
  REQUIRE(reload.exit_code == 0);
  CHECK_FALSE(baton.status()["sockets"][0].contains("backlog_changed"));
}

TEST_CASE("SIGTERM and SIGINT stop baton the same way, with exit status 0") {
  for (int sig : {SIGTERM, SIGINT}) {
    CAPTURE(sig);
    TempDir dir;
    std::string config = write_config(dir, hello_command(), {{"unix", "unix:app.sock"}});
    Baton baton(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(baton.wait_ready());
    pid_t app = baton.instance_pid("ready");
    kill(baton.pid(), sig);
    CHECK(baton.wait_exit() == 0);
    CHECK_FALSE(process_exists(app));
    CHECK_FALSE(path_exists(dir.file("app.sock")));
    CHECK_FALSE(path_exists(dir.file("control.sock")));
  }
}

TEST_CASE("an app that ignores the drain signal is killed after drain_timeout") {
  TempDir dir;
  std::string config =
      write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}},
                   "drain_timeout = \"300ms\"\n[environment]\nHELLO_IGNORE_SIGTERM = \"1\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  REQUIRE(app > 0);
  kill(baton.pid(), SIGTERM);
  CHECK(baton.wait_exit() == 0);
  CHECK_FALSE(process_exists(app));
  std::string log = baton.log();
  CHECK(log.find(fmt::format("pid {} still running after drain_timeout (300ms); killing it",
                             app)) != std::string::npos);
  CHECK(log.find(fmt::format("generation 1: pid {} killed by SIGKILL after drain_timeout (300ms)",
                             app)) != std::string::npos);
}

TEST_CASE("READY=1 counts only from the app's main pid, as told by SCM_CREDENTIALS") {
  TempDir dir;
  std::string config =
      write_config(dir, fmt::format("\"{}\"", probe_bin()), {{"http", "tcp://127.0.0.1:0"}},
                   "[environment]\nPROBE_CHILD_READY = \"1\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  pid_t app = baton.wait_instance("starting");
  REQUIRE(app > 0);
  // The child's READY=1 was sent (and processed) before the parent's STATUS.
  REQUIRE(eventually([&] { return baton.status()["instances"][0]["status"] == "child done"; }));
  CHECK(baton.status()["instances"][0]["state"] == "starting");

  kill(app, SIGUSR1);
  REQUIRE(baton.wait_ready());
  CHECK(baton.instance_pid("ready") == app);
}

TEST_CASE("fds attached to notify datagrams are closed (sd_notify_barrier returns)") {
  TempDir dir;
  std::string config =
      write_config(dir, fmt::format("\"{}\"", probe_bin()), {{"http", "tcp://127.0.0.1:0"}},
                   "[environment]\nPROBE_BARRIER = \"1\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  CHECK(baton.log().find("barrier failed") == std::string::npos);
  CHECK(baton.status()["restarts"] == 0);
}

TEST_CASE("an app that never sends READY=1 is killed after ready_timeout and restarted") {
  TempDir dir;
  std::string config = write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}},
                                    "ready_timeout = \"200ms\"\nrestart_delay = \"5s\"\n"
                                    "[environment]\nHELLO_HANG = \"1\"\n");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  pid_t app = baton.wait_instance("starting");
  REQUIRE(app > 0);
  REQUIRE(baton.wait_until(restarting(1)));
  CHECK_FALSE(process_exists(app));
  CHECK(baton.log().find(fmt::format("pid {} sent no READY=1 within ready_timeout (200ms)", app)) !=
        std::string::npos);
}

TEST_CASE("run from flags: --listen and --control with the command after --") {
  TempDir dir;
  std::string control = dir.file("ctl.sock");
  Baton baton(dir, {"--listen", "web=tcp://127.0.0.1:0", "--control", control, "--", hello_bin()},
              control);
  REQUIRE(baton.wait_ready());
  auto status = baton.status();
  CHECK(status["sockets"][0]["name"] == "web");
  CHECK(status["sockets"][0]["url"] == "tcp://127.0.0.1:0");
  Response r = http_get(address_of(status, "web"));
  CHECK(r.body == hello_body(baton.instance_pid("ready")));
}

TEST_CASE("the control socket is owner-only and a second baton on it is refused") {
  TempDir dir;
  std::string config = write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}});
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  CHECK((std::filesystem::status(dir.file("control.sock")).permissions() &
         std::filesystem::perms::all) == std::filesystem::perms::owner_all);
  CommandResult second = run_command({baton_bin(), "run", "-c", config});
  CHECK(second.exit_code == 111);
  CHECK(second.err.find(fmt::format("another baton is already running with control socket {}",
                                    dir.file("control.sock"))) != std::string::npos);
}

TEST_CASE("bind errors name the socket and the address, and exit 111") {
  int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(busy, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(listen(busy, 1) == 0);
  getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  TempDir dir;
  CommandResult r =
      run_command({baton_bin(), "run", "--listen", fmt::format("http=tcp://127.0.0.1:{}", port),
                   "--control", dir.file("c.sock"), "--", hello_bin()});
  close(busy);
  CHECK(r.exit_code == 111);
  CHECK(r.err.find(fmt::format("http: cannot bind 127.0.0.1:{}: Address already in use", port)) !=
        std::string::npos);
  CHECK_FALSE(path_exists(dir.file("c.sock")));
}

TEST_CASE("unix socket files: a stale one is replaced, anything else is refused") {
  TempDir dir;
  // A socket file nobody listens on, as a crashed process leaves it.
  int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::string path = dir.file("app.sock");
  std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(bind(stale, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
  close(stale);
  {
    std::string config = write_config(dir, hello_command(), {{"unix", "unix:app.sock"}});
    Baton baton(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(baton.wait_ready());
    CHECK(http_get(path).body == hello_body(baton.instance_pid("ready")));
  }
  dir.write("plain", "not a socket");
  CommandResult r = run_command({baton_bin(), "run", "--listen", "u=unix:" + dir.file("plain"),
                                 "--control", dir.file("c2.sock"), "--", hello_bin()});
  CHECK(r.exit_code == 111);
  CHECK(r.err.find(fmt::format("u: cannot bind {}: the path exists and is not a socket",
                               dir.file("plain"))) != std::string::npos);
}

TEST_CASE("check validates a config with file:line:column messages") {
  TempDir dir;
  std::string good = write_config(dir, hello_command(), {{"http", "tcp://127.0.0.1:0"}});
  CommandResult ok = run_command({baton_bin(), "check", "-c", good});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == fmt::format("{}: ok (1 socket, command {})\n", good, hello_bin()));

  std::string bad = dir.write("bad.toml", fmt::format("command = [\"{}\"]\ndrain_timout = \"1s\"\n"
                                                      "[[socket]]\nname = \"http\"\n"
                                                      "listen = \"tcp://localhost:80\"\n",
                                                      hello_bin()));
  CommandResult r = run_command({baton_bin(), "check", "-c", bad});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(fmt::format("{}:2:1: unknown key 'drain_timout' in the top level (did you mean "
                               "'drain_timeout'?)",
                               bad)) != std::string::npos);
  CHECK(r.err.find(fmt::format("{}:5:10: invalid socket URL \"tcp://localhost:80\"", bad)) !=
        std::string::npos);

  std::string missing = dir.write("missing.toml",
                                  "command = [\"/nonexistent/app\"]\n"
                                  "[[socket]]\nname = \"a\"\nlisten = \"udp://127.0.0.1:0\"\n");
  CommandResult m = run_command({baton_bin(), "check", "-c", missing});
  CHECK(m.exit_code == 1);
  CHECK(m.err.find("command /nonexistent/app is not an executable file") != std::string::npos);

  CommandResult usage = run_command({baton_bin(), "check"});
  CHECK(usage.exit_code == 100);
  CHECK(usage.err == "baton: check needs -c FILE (see baton --help)\n");
}

TEST_CASE("client commands say plainly when no baton is running") {
  TempDir dir;
  CommandResult r = run_command({baton_bin(), "status", "--control", dir.file("none.sock")});
  CHECK(r.exit_code == 111);
  CHECK(r.err == fmt::format("baton: cannot reach baton at {}: No such file or directory (is baton "
                             "running?)\n",
                             dir.file("none.sock")));
}

TEST_CASE("a crash loop shows its last exit and next start, and its failures count up") {
  TempDir dir;
  std::string config = write_config(dir, "\"/bin/sh\", \"-c\", \"echo boom >&2; exit 4\"",
                                    {{"http", "tcp://127.0.0.1:0"}},
                                    "restart_delay = \"50ms\"\nrestart_delay_max = \"10s\"");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  // No READY=1 ever comes to say baton is up: until its control socket
  // answers, a status request fails, which counts as "not yet".
  auto failures = [&] {
    CommandResult r = run_command({baton_bin(), "status", "--json", "-c", config});
    return r.exit_code == 0 ? nlohmann::json::parse(r.out)["consecutive_failures"].get<int>() : -1;
  };
  // Before, a run that lasted longer than nothing reset the count: it stayed at 1.
  REQUIRE(eventually([&] { return failures() >= 3; }));
  nlohmann::json status = baton.status();
  CHECK(status["last_exit"]["reason"].get<std::string>().find(
            "exited with status 4 before READY=1") != std::string::npos);
  // The text while it waits to restart (an attempt lasts only as long as
  // the shell takes to exit, the waits 50ms and more).
  CommandResult text;
  CHECK(eventually([&] {
    text = run_command({baton_bin(), "status", "-c", config});
    return text.out.find("\nno app process is running\n") != std::string::npos;
  }));
  INFO(text.out);
  CHECK(text.out.find("exited with status 4 before READY=1\n") != std::string::npos);
  CHECK(text.out.find("\nnext start in ") != std::string::npos);
  // A readiness probe's answer: not ready, and why.
  CommandResult ready = run_command({baton_bin(), "status", "--ready", "-c", config});
  CHECK(ready.exit_code == 1);
  CHECK(ready.out.starts_with("not ready: generation 1 has no ready instance"));
  INFO(ready.out);
  CHECK(ready.out.find("; last exit: ") != std::string::npos);
  CHECK(ready.out.find("exited with status 4 before READY=1\n") != std::string::npos);
}

TEST_CASE("a command that is neither ELF nor #! script is not run under /bin/sh") {
  TempDir dir;
  // Without a #! line, execvp would have run this under /bin/sh.
  std::string script = dir.write("no-shebang", "touch ran-under-sh\n");
  chmod(script.c_str(), 0755);
  std::string config = write_config(dir, fmt::format("\"{}\"", script),
                                    {{"http", "tcp://127.0.0.1:0"}}, "restart_delay = \"1s\"");
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  std::string expected = fmt::format(
      "baton: cannot execute {}: it is neither an ELF binary nor a script with a #! line (Exec "
      "format error)",
      script);
  // The app's stderr line and baton's record of the exit arrive separately.
  CHECK(eventually([&] { return baton.log().find(expected) != std::string::npos; }));
  CHECK(eventually([&] {
    return baton.log().find(
               "exited with status 127 (the command could not be executed) before "
               "READY=1") != std::string::npos;
  }));
  CHECK_FALSE(path_exists(dir.file("ran-under-sh")));
}

// End-to-end tests of baton speaking systemd's protocols without systemd as
// PID 1: sockets from systemd-socket-activate, the READY/RELOADING/STOPPING
// sequence and STATUS lines sent to its NOTIFY_SOCKET, and its sockets
// parked in the fd store.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <iterator>

#include <fmt/format.h>

#include "harness.h"

using namespace e2e;

namespace {

std::string config_text(const std::string& url, const std::string& extra = "") {
  return fmt::format(
      "command = [\"{}\"]\ncontrol = \"control.sock\"\n{}\n"
      "[[socket]]\nname = \"http\"\nlisten = \"{}\"\n",
      hello_bin(), extra, url);
}

/// The datagrams of `history` that carry one of `keys` (READY=1 ...), in order.
std::vector<std::string> lifecycle(const std::vector<std::string>& history) {
  std::vector<std::string> out;
  for (const std::string& m : history) {
    for (const char* key : {"READY=1", "RELOADING=1", "STOPPING=1"}) {
      if (m.find(key) != std::string::npos) out.push_back(key);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("started by systemd-socket-activate, baton takes the socket and binds nothing") {
  REQUIRE(path_exists("/usr/bin/systemd-socket-activate"));
  TempDir dir;
  std::string address = fmt::format("127.0.0.1:{}", free_port());
  std::string config = dir.write("baton.toml", config_text("tcp://" + address));
  Baton baton(dir, {"--fdname=http", "-l", address, baton_bin(), "run", "-c", config},
              dir.file("control.sock"), "/usr/bin/systemd-socket-activate");
  // systemd-socket-activate starts baton on the first connection: this
  // client waits in the backlog while baton and the app start, then is served.
  REQUIRE(eventually([&] { return baton.log().find("Listening on") != std::string::npos; }));
  Response first = http_get(address, "/", 10s);
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  CHECK(first.body == fmt::format("hello from pid {} version 1\n", app));
  CHECK(baton.status()["sockets"][0]["address"] == address);
  CHECK(http_get(address).body == fmt::format("hello from pid {} version 1\n", app));
  CHECK(baton.log().find("socket http: taken from systemd (fd 3 (name \"http\") from systemd)") !=
        std::string::npos);
  // Had baton bound a socket of its own on that address, it would have
  // failed with EADDRINUSE: the one serving is systemd-socket-activate's.
  CHECK(baton.log().find(fmt::format("Listening on {} as 3.", address)) != std::string::npos);
}

TEST_CASE("a socket from systemd that does not fit the config is refused plainly") {
  REQUIRE(path_exists("/usr/bin/systemd-socket-activate"));
  TempDir dir;
  std::string address = fmt::format("127.0.0.1:{}", free_port());
  std::string config = dir.write("baton.toml", config_text("udp://127.0.0.1:0"));
  auto running = std::async(std::launch::async, [&] {
    return run_command({"/usr/bin/systemd-socket-activate", "--fdname=http", "-l", address,
                        baton_bin(), "run", "-c", config});
  });
  // It starts baton on the first connection.
  int fd = -1;
  REQUIRE(eventually([&] { return (fd = connect_stream(address)) >= 0; }));
  CommandResult r = running.get();
  close(fd);
  CHECK(r.exit_code == 111);
  CHECK(r.err.find(fmt::format("http: fd 3 (name \"http\") from systemd is a tcp {} socket, but "
                               "the config wants udp 127.0.0.1:0 (udp://127.0.0.1:0)",
                               address)) != std::string::npos);
}

TEST_CASE("baton tells its manager READY, RELOADING, READY, STOPPING with STATUS lines") {
  TempDir dir;
  std::string config = dir.write("baton.toml", config_text("tcp://127.0.0.1:0"));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t first = baton.instance_pid("ready");
  CommandResult ok = run_command({baton_bin(), "reload", "-c", config});
  REQUIRE(ok.exit_code == 0);
  dir.write("baton.toml", config_text("tcp://127.0.0.1:0", "bogus = 1"));
  REQUIRE(run_command({baton_bin(), "reload", "-c", config}).exit_code == 1);  // refused
  kill(baton.pid(), SIGTERM);
  REQUIRE(baton.wait_exit() == 0);
  while (baton.notify().next(0ms)) {
  }
  const auto& history = baton.notify().history();
  CHECK(lifecycle(history) ==
        std::vector<std::string>{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"});
  auto has = [&](const std::string& text) {
    return std::any_of(history.begin(), history.end(),
                       [&](const std::string& m) { return m.find(text) != std::string::npos; });
  };
  CHECK(has(fmt::format("STATUS=generation 1 pid {} ready", first)));
  CHECK(has("; reloading: generation 2 pid "));
  CHECK(has("; last reload ok"));
  // baton's own sockets go to the fd store under their names.
  CHECK(has("FDSTORE=1\nFDNAME=http"));
}

TEST_CASE("an app that stops sending WATCHDOG=1 is replaced through the normal handoff") {
  TempDir dir;
  std::string config =
      dir.write("baton.toml", config_text("tcp://127.0.0.1:0", "watchdog_sec = \"300ms\""));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t first = baton.instance_pid("ready");
  REQUIRE(first > 0);
  // hello never sends WATCHDOG=1: 300 ms after READY=1 it is replaced.
  REQUIRE(baton.wait_until(generation_reached(2)));
  CHECK(baton.log().find(fmt::format("generation 1: pid {} sent no WATCHDOG=1 for 300ms; "
                                     "replacing it",
                                     first)) != std::string::npos);
  REQUIRE(eventually([&] { return !process_exists(first); }));
}

TEST_CASE("the app gets WATCHDOG_USEC and its own pid as WATCHDOG_PID") {
  TempDir dir;
  std::string report = dir.file("report");
  std::string config = dir.write(
      "baton.toml",
      fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\nwatchdog_sec = \"1h\"\n"
                  "[environment]\nPROBE_OUT = \"{}\"\n"
                  "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
                  probe_bin(), report));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  std::ifstream in(report);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("WATCHDOG_USEC=3600000000\n") != std::string::npos);
  CHECK(text.find(fmt::format("WATCHDOG_PID={}\n", app)) != std::string::npos);
}

TEST_CASE("sockets parked in the fd store come back to a restarted baton, queued client served") {
  TempDir dir;
  std::string config = dir.write("baton.toml", config_text("tcp://127.0.0.1:0"));
  int stored = -1;
  std::string address;
  {
    Baton first(dir, {"-c", config}, dir.file("control.sock"));
    REQUIRE(first.wait_ready());
    address = first.status()["sockets"][0]["address"];
    // Sent before READY=1, so already received.
    int fd = first.notify().fd_of("FDSTORE=1\nFDNAME=http");
    REQUIRE(fd >= 0);
    stored = dup(fd);  // what systemd keeps while baton is gone
    // baton and its app die without a chance to clean up (a crash).
    pid_t app = first.instance_pid("ready");
    kill(first.pid(), SIGKILL);
    REQUIRE(first.wait_exit().has_value());
    kill(-app, SIGKILL);
    REQUIRE(eventually([&] { return !process_exists(app); }));
  }
  // While no baton runs, a client connects: the parked socket queues it.
  int client = connect_stream(address, 10s);
  REQUIRE(client >= 0);
  auto second = Baton::with_socket(dir, {"-c", config}, dir.file("control.sock"), stored, "http");
  close(stored);
  REQUIRE(second->wait_ready());
  Response r = http_get_on(client);
  CHECK(r.error == "");
  CHECK(r.body == fmt::format("hello from pid {} version 1\n", second->instance_pid("ready")));
  CHECK(second->log().find("socket http: taken from systemd (fd 3 (name \"http\") from systemd)") !=
        std::string::npos);
}

TEST_CASE("when stderr is the journal, lines carry syslog priorities and no timestamps") {
  TempDir dir;
  int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = free_port();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(busy, 1) == 0);
  // JOURNAL_STREAM names stderr's device and inode, as systemd sets it.
  CommandResult r = run_command(
      {"/bin/sh", "-c", "export JOURNAL_STREAM=$(stat -L -c %d:%i /dev/stderr); exec \"$0\" \"$@\"",
       baton_bin(), "run", "--listen", fmt::format("http=tcp://127.0.0.1:{}", port), "--control",
       dir.file("c.sock"), "--", hello_bin()});
  close(busy);
  CHECK(r.exit_code == 111);
  CHECK(r.err == fmt::format("<2>http: cannot bind 127.0.0.1:{}: Address already in use\n", port));
}

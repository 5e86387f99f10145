// End-to-end tests: faults under load (baton as PID 1 with an app that
// leaves orphans, a reader of baton's stderr that stops reading, a pid
// named with MAINPID= that is reused by the next generation, a crash soon
// after READY, a process that escapes the app's group).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "harness.h"
#include "load_support.h"

using namespace e2e;

namespace {

/// A launcher script for Baton: runs `baton run ...` as PID 1 of a new pid
/// namespace (with its own /proc), as a container entrypoint would be. The
/// harness passes "-E NOTIFY_SOCKET=..." first (for systemd-socket-activate);
/// the environment already carries it, so the script drops those two.
std::string pid1_launcher(const TempDir& dir) {
  std::string path = dir.write("pid1.sh",
                               "#!/bin/sh\nshift 2\nexec unshare --pid --fork --mount-proc "
                               "\"$@\"\n");
  chmod(path.c_str(), 0755);
  return path;
}

/// The pids of `pid`'s children.
std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, pid));
  std::vector<pid_t> out;
  for (pid_t child; in >> child;) out.push_back(child);
  return out;
}

/// How many of `pid`'s children are zombies.
int zombie_children(pid_t pid) {
  int zombies = 0;
  for (pid_t child : children_of(pid)) {
    std::ifstream stat(fmt::format("/proc/{}/stat", child));
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t close = text.rfind(')');
    if (close != std::string::npos && text.compare(close + 1, 3, " Z ") == 0) ++zombies;
  }
  return zombies;
}

std::string config_text(const std::string& command,
                        const std::string& extra = "ready_timeout = \"5s\"\ndrain_timeout = \"5s\"",
                        int port = 0) {
  return fmt::format(
      "command = {}\ncontrol = \"control.sock\"\n{}\n[[socket]]\nname = "
      "\"http\"\nlisten = \"tcp://127.0.0.1:{}\"\n",
      command, extra, port);
}

std::string address_of(Baton& baton) {
  return baton.status()["sockets"][0]["address"].get<std::string>();
}

CommandResult reload(const std::string& config) {
  return run_command({baton_bin(), "reload", "-c", config}, 60s);
}

}  // namespace

TEST_CASE("fault: as PID 1 baton reaps the orphans its app leaves, and SIGTERM drains it") {
  TempDir dir;
  // Each generation leaves a short-lived orphan behind: the subshell exits
  // at once, so its sleep is reparented to PID 1, which is baton.
  std::string config = dir.write(
      "baton.toml",
      config_text(fmt::format("[\"/bin/sh\", \"-c\", \"(sleep 0.01 &); exec {}\"]", hello_bin())));
  Baton baton(dir, {baton_bin(), "run", "-c", config}, dir.file("control.sock"),
              pid1_launcher(dir));
  REQUIRE(baton.wait_ready());
  INFO(baton.log());
  std::vector<pid_t> inner = children_of(baton.pid());  // unshare's child: baton, as PID 1
  REQUIRE(inner.size() == 1);
  pid_t baton_pid = inner[0];
  CHECK(baton.status()["pid"] == 1);
  // The container's readiness probe.
  CommandResult ready = run_command({baton_bin(), "status", "--ready", "-c", config});
  CHECK(ready.exit_code == 0);
  CHECK(ready.out == "ready: generation 1, 1 of 1 instance ready\n");

  auto load = start_load(address_of(baton));
  REQUIRE(traffic_flows(*load));
  for (int i = 0; i < 20; ++i) {
    CommandResult r = reload(config);
    INFO("reload ", i + 1, ": ", r.out, r.err);
    REQUIRE(r.exit_code == 0);
  }
  REQUIRE(traffic_flows(*load));
  finish_without_failures(*load);
  // Every orphan exits 10ms after its generation starts; baton reaps each
  // on its SIGCHLD, so none is left a zombie (before, all 21 stayed).
  CHECK(eventually([&] { return zombie_children(baton_pid) == 0; }, 5s));
  CHECK(zombie_children(baton_pid) == 0);

  REQUIRE(kill(baton_pid, SIGTERM) == 0);
  CHECK(baton.wait_exit(15s) == std::optional<int>(0));
  // Gone: a probe that cannot reach baton fails too.
  CommandResult gone = run_command({baton_bin(), "status", "--ready", "-c", config});
  CHECK(gone.exit_code == 111);
  CHECK(gone.out.empty());
}

TEST_CASE("fault: a reader of baton's stderr that stops reading does not stall reloads") {
  TempDir dir;
  // baton's stderr is a fifo whose reader never reads: once the pipe is
  // full, every write to it would block.
  std::string launcher = dir.write(
      "stalled-stderr.sh", fmt::format("#!/bin/sh\nshift 2\nmkfifo {0}/stderr.fifo\n"
                                       "sleep 600 < {0}/stderr.fifo &\necho $! > {0}/reader.pid\n"
                                       "exec \"$@\" 2> {0}/stderr.fifo\n",
                                       dir.path()));
  chmod(launcher.c_str(), 0755);
  // Each generation writes 50,000 lines (289 KB, over four times what a pipe
  // holds) to stderr while it serves. A stall would be for good:
  // ready_timeout only bounds the wait, wide enough for a sanitizer build
  // beside other suites (seen: 5 s was not).
  std::string config = dir.write(
      "baton.toml",
      config_text(fmt::format("[\"/bin/sh\", \"-c\", \"seq 1 50000 >&2 & exec {}\"]", hello_bin()),
                  "ready_timeout = \"30s\"\ndrain_timeout = \"5s\""));
  Baton baton(dir, {baton_bin(), "run", "-c", config}, dir.file("control.sock"), launcher);
  struct ReaderGuard {
    const TempDir& dir;
    ~ReaderGuard() {
      std::ifstream in(dir.file("reader.pid"));
      pid_t pid = 0;
      if (in >> pid && pid > 1) kill(pid, SIGKILL);
    }
  } reader_guard{dir};
  REQUIRE(baton.wait_ready());

  auto load = start_load(address_of(baton));
  REQUIRE(traffic_flows(*load));
  for (int i = 0; i < 5; ++i) {
    CommandResult r = reload(config);
    INFO("reload ", i + 1, ": ", r.out, r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(traffic_flows(*load));
  }
  finish_without_failures(*load);
  CHECK(baton.status()["generation"] == 6);
}

TEST_CASE("fault: a pid named with MAINPID= and reused by the next generation is not credited") {
  TempDir dir;
  // Generation 1 names pid 4000 with MAINPID= (no such process yet), then
  // makes 4000 the next pid of baton's pid namespace: the next process
  // baton starts, generation 2, gets it. Its READY=1 must count for
  // generation 2, not for generation 1's stale MAINPID.
  std::string app = dir.write("mainpid.py", R"(import os, signal, socket, time
addr = os.environ["NOTIFY_SOCKET"]
addr = "\0" + addr[1:] if addr.startswith("@") else addr
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"MAINPID=4000", addr)
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write("3999")
s.sendto(b"READY=1", addr)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    time.sleep(60)
)");
  std::string config =
      dir.write("baton.toml", config_text(fmt::format("[\"python3\", \"{}\"]", app),
                                          "ready_timeout = \"3s\"\ndrain_timeout = \"5s\""));
  Baton baton(dir, {baton_bin(), "run", "-c", config}, dir.file("control.sock"),
              pid1_launcher(dir));
  bool ready = baton.wait_ready();
  INFO(baton.log());
  REQUIRE(ready);
  int port = std::stoi(address_of(baton).substr(address_of(baton).rfind(':') + 1));
  dir.write("baton.toml", config_text(fmt::format("[\"{}\"]", hello_bin()), "", port));
  CommandResult r = reload(config);
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  nlohmann::json status = baton.status();
  CHECK(status["generation"] == 2);
  CHECK(baton.instance_pid("ready") == 4000);
}

namespace {

/// A hello service whose app leaves a process outside its group (setsid)
/// holding the listening socket; the escaped pid is written to escaped.pid.
struct EscapingService {
  TempDir dir;
  std::string config = dir.write(
      "baton.toml",
      config_text(fmt::format("[\"/bin/sh\", \"-c\", \"setsid sleep 300 & echo $! > {}; exec {}\"]",
                              dir.file("escaped.pid"), hello_bin()),
                  "ready_timeout = \"5s\"\ndrain_timeout = \"1s\""));
  Baton baton{dir, {"-c", config}, dir.file("control.sock")};

  /// The escaped process (-1 until the app has written it).
  pid_t escaped() const {
    std::ifstream in(dir.file("escaped.pid"));
    pid_t pid = -1;
    in >> pid;
    return pid;
  }
  ~EscapingService() {
    if (pid_t pid = escaped(); pid > 1 && process_exists(pid)) kill(pid, SIGKILL);
  }
};

}  // namespace

TEST_CASE("fault: a process that escaped the app's group is named and killed at stop") {
  EscapingService service;
  REQUIRE(service.baton.wait_ready());
  std::string address = address_of(service.baton);
  REQUIRE(eventually([&] { return service.escaped() > 0; }));
  pid_t escaped = service.escaped();

  CommandResult r = run_command({baton_bin(), "stop", "-c", service.config}, 30s);
  INFO(service.baton.log());
  CHECK(r.exit_code == 0);
  CHECK(service.baton.wait_exit(10s) == std::optional<int>(0));
  // Before, the escaped sleep kept the socket: the port stayed in LISTEN
  // and new clients hung. Now it is killed, and once the test (baton's
  // manager here) drops the copies baton parked in its fd store, nothing
  // holds the socket and the port refuses at once.
  CHECK_FALSE(process_exists(escaped));
  service.baton.notify().next(0ms);
  service.baton.notify().drop_fds();
  CHECK(connect_stream(address, 2s) == -1);
  std::string log = service.baton.log();
  CHECK(log.find(fmt::format("pid {} (sleep 300) is outside every instance's process group but "
                             "still holds socket http after generation 1 pid",
                             escaped)) != std::string::npos);
  CHECK(log.find(fmt::format("pid {} (sleep 300): drain_timeout is over; killing it (SIGKILL)",
                             escaped)) != std::string::npos);
}

TEST_CASE("fault: an escaped process of the replaced generation is killed after its drain") {
  EscapingService service;
  REQUIRE(service.baton.wait_ready());
  REQUIRE(eventually([&] { return service.escaped() > 0; }));
  pid_t escaped = service.escaped();
  auto load = start_load(address_of(service.baton));
  REQUIRE(traffic_flows(*load));
  CommandResult r = reload(service.config);
  INFO(r.out, r.err, service.baton.log());
  REQUIRE(r.exit_code == 0);
  // drain_timeout is 1s: the escaped process of generation 1 is gone soon
  // after, while generation 2 (and its own escaped process) serves on.
  CHECK(eventually([&] { return !process_exists(escaped); }, 10s));
  REQUIRE(traffic_flows(*load));
  finish_without_failures(*load);
  pid_t second = service.escaped();
  CHECK(second != escaped);
  CHECK(process_exists(second));
}

TEST_CASE("fault: a new version that dies 200ms after READY is rolled back within min_ready") {
  TempDir dir;
  std::string config = dir.write("baton.toml", config_text(fmt::format("[\"{}\"]", hello_bin())));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t old_pid = baton.instance_pid("ready");
  std::string address = address_of(baton);
  int port = std::stoi(address.substr(address.rfind(':') + 1));
  // The new version says READY=1, then dies while it is still warming up,
  // before it has taken a connection.
  std::string app = dir.write("crash.py", R"(import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
addr = "\0" + addr[1:] if addr.startswith("@") else addr
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", addr)
time.sleep(0.2)
print("warm-up failed", file=sys.stderr, flush=True)
sys.exit(3)
)");
  auto load = start_load(address);
  REQUIRE(traffic_flows(*load));
  dir.write(
      "baton.toml",
      config_text(fmt::format("[\"python3\", \"{}\"]", app),
                  "ready_timeout = \"5s\"\ndrain_timeout = \"5s\"\nmin_ready = \"3s\"", port));
  CommandResult r = reload(config);
  INFO(r.out, r.err, baton.log());
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("reload failed: generation 2 pid") != std::string::npos);
  CHECK(r.err.find("exited with status 3 while ready within min_ready (3s); generation 1 (pid " +
                   std::to_string(old_pid) + ") keeps serving") != std::string::npos);
  CHECK(r.err.find("  warm-up failed") != std::string::npos);
  CHECK(r.out.find("generation 1 keeps serving for min_ready (3s) in case it exits") !=
        std::string::npos);
  // Without min_ready the old generation would have been drained at READY
  // and nobody would be serving now. It was never touched.
  REQUIRE(traffic_flows(*load));
  finish_without_failures(*load);
  CHECK(baton.instance_pid("ready") == old_pid);
  CHECK(baton.status()["last_reload"]["result"] == "rolled back");
}

TEST_CASE("fault: a new version that stays up for min_ready is committed; 0 failed") {
  TempDir dir;
  std::string config = dir.write(
      "baton.toml",
      config_text(fmt::format("[\"{}\"]", hello_bin()),
                  "ready_timeout = \"5s\"\ndrain_timeout = \"5s\"\nmin_ready = \"300ms\""));
  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  pid_t old_pid = baton.instance_pid("ready");
  auto load = start_load(address_of(baton));
  REQUIRE(traffic_flows(*load));
  CommandResult r = reload(config);
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("stayed up for min_ready (300ms)") != std::string::npos);
  pid_t new_pid = baton.instance_pid("ready");
  CHECK(new_pid != old_pid);
  REQUIRE(eventually([&] { return load->has_served(new_pid); }));
  finish_without_failures(*load);
  CHECK(baton.status()["last_reload"]["ready_to_drain_ms"].get<int64_t>() >= 300);
}

TEST_CASE("fault: a baton started after kill -9 takes over the app left serving; 0 refused") {
  TempDir dir;
  std::string config = dir.write("baton.toml", config_text(fmt::format("[\"{}\"]", hello_bin())));
  auto first = std::make_unique<Baton>(dir, std::vector<std::string>{"-c", config},
                                       dir.file("control.sock"));
  REQUIRE(first->wait_ready());
  pid_t left = first->instance_pid("ready");
  std::string address = address_of(*first);
  int port = std::stoi(address.substr(address.rfind(':') + 1));
  dir.write("baton.toml", config_text(fmt::format("[\"{}\"]", hello_bin()),
                                      "ready_timeout = \"5s\"\ndrain_timeout = \"5s\"", port));
  auto load = start_load(address);
  REQUIRE(traffic_flows(*load));

  // baton dies; its app serves on alone, holding the port.
  REQUIRE(kill(first->pid(), SIGKILL) == 0);
  REQUIRE(first->wait_exit(5s) == std::optional<int>(128 + SIGKILL));
  REQUIRE(traffic_flows(*load));
  CHECK(load->has_served(left));

  // A new baton takes the sockets over (instead of failing with EADDRINUSE),
  // starts generation 1 beside the left-over app, then drains it.
  Baton second(dir, {"-c", config}, dir.file("control.sock"));
  INFO(second.log());
  INFO(second.describe());
  REQUIRE(second.wait_ready());
  pid_t fresh = second.instance_pid("ready");
  CHECK(fresh != left);
  CHECK(eventually([&] { return !process_exists(left); }, 10s));
  REQUIRE(eventually([&] { return load->has_served(fresh); }));
  finish_without_failures(*load);
  std::string log = second.log();
  CHECK(log.find(fmt::format("socket http: {} is held by pid {} ({}), left serving by baton pid "
                             "{}, which is gone: taking it over",
                             address, left, hello_bin(), first->pid())) != std::string::npos);
  CHECK(eventually([&] {
    return second.log().find(fmt::format("left-over app (group {}) has exited", left)) !=
           std::string::npos;
  }));
  CHECK(second.status()["sockets"][0]["address"] == address);
}

TEST_CASE("fault: an address held by a program baton did not start is refused with its pid") {
  TempDir dir;
  int port = free_port();
  // A stand-in squatter: python3 listening on the port baton wants.
  std::string squat = dir.write("squat.py", fmt::format(R"(import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {}))
s.listen()
print("listening", flush=True)
time.sleep(60)
)",
                                                        port));
  Child squatter = Child::spawn({.argv = {"/usr/bin/python3", squat}});
  REQUIRE(eventually([&] { return accept_queue_length(port) >= 0; }));
  std::string config =
      dir.write("baton.toml", config_text(fmt::format("[\"{}\"]", hello_bin()),
                                          "ready_timeout = \"5s\"\ndrain_timeout = \"5s\"", port));
  CommandResult r = run_command({baton_bin(), "run", "-c", config}, 20s);
  INFO(r.err);
  CHECK(r.exit_code == 111);
  // The interpreter shows as whatever path python3 resolved to.
  CHECK(r.err.find(fmt::format("http: 127.0.0.1:{} is held by pid {} (", port, squatter.pid())) !=
        std::string::npos);
  CHECK(r.err.find(fmt::format("python3 {}), which baton did not start: stop it, or configure "
                               "another address",
                               squat)) != std::string::npos);
}

// End-to-end tests of checked deploys: readiness probes against the
// candidate alone (per-generation listeners and the kernel's steering),
// smoke checks, the pre_reload and after_drained hooks, the unix-socket
// switch by rename, and reloads under load with tcp_migrate_req 0 and 1
// (the latter in a network namespace the test creates).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "harness.h"
#include "load_client.h"
#include "load_support.h"

using namespace e2e;

namespace {

/// A hello service that sends no READY=1: baton's probes decide when it is
/// ready. `ready` is the [ready] table's body; `listen` the socket URL
/// (port 0: the kernel's choice, kept across rewrites).
class ProbedService {
 public:
  explicit ProbedService(std::string top = "", std::string ready = "http = \"/healthz\"\n",
                         std::string listen = "tcp://127.0.0.1:0")
      : top_(std::move(top)), ready_(std::move(ready)), listen_(std::move(listen)) {
    write("");
    baton_ = std::make_unique<Baton>(dir_, std::vector<std::string>{"-c", dir_.file("baton.toml")},
                                     dir_.file("control.sock"));
    REQUIRE(baton_->wait_ready());
    address_ = baton_->status()["sockets"][0]["address"].get<std::string>();
    if (listen_.rfind("tcp://", 0) == 0) {
      listen_ = "tcp://" + address_;  // the port the kernel chose
    }
  }

  /// Rewrites the config; `env` adds [environment] lines, `more` top-level
  /// settings and tables (after [ready]).
  void write(const std::string& env, const std::string& more = "",
             const std::string& ready_timeout = "10s") {
    dir_.write("baton.toml",
               fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\nready_timeout = "
                           "\"{}\"\n{}\n{}\n[ready]\ninterval = \"50ms\"\n{}\n"
                           "[environment]\nHELLO_NO_NOTIFY = \"1\"\n{}\n"
                           "[[socket]]\nname = \"http\"\nlisten = \"{}\"\n",
                           hello_bin(), ready_timeout, top_, more, ready_, env, listen_));
  }
  CommandResult reload(bool wait = false) {
    std::vector<std::string> argv = {baton_bin(), "reload", "-c", dir_.file("baton.toml")};
    if (wait) argv.push_back("--wait");
    return run_command(argv, 60s);
  }
  std::future<CommandResult> reload_async(bool wait = false) {
    return std::async(std::launch::async, [this, wait] { return reload(wait); });
  }

  Baton& baton() { return *baton_; }
  const std::string& address() const { return address_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string top_, ready_, listen_;
  std::unique_ptr<Baton> baton_;
  std::string address_;
};

/// GET / on 127.0.0.1:port from `source` (baton's probe source, or the
/// default); the pid in hello's answer, or -1.
pid_t pid_answering(const std::string& address, const char* source) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (source) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source, &from.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  Response r = http_get_on(fd, "/", 5s);
  close(fd);
  const std::string marker = "hello from pid ";
  auto at = r.body.find(marker);
  return at == std::string::npos ? -1 : std::stoi(r.body.substr(at + marker.size()));
}

/// The candidate's probe attempts so far (status "probes" of the starting
/// instance of `generation`), 0 if none.
int probe_attempts(const nlohmann::json& status, int generation) {
  for (const auto& i : status["instances"]) {
    if (i["generation"] != generation || !i.contains("probes") || i["probes"].empty()) continue;
    std::string last = i["probes"][0].get<std::string>();
    auto at = last.rfind("(attempt ");
    if (at != std::string::npos) return std::stoi(last.substr(at + 9));
  }
  return 0;
}

}  // namespace

TEST_CASE("checked deploy: the switch comes after the candidate's first passing /healthz") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    ProbedService service;
    pid_t old = service.baton().instance_pid("ready");
    REQUIRE(old > 0);
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    service.write("HELLO_HEALTH_FAIL_MS = \"1500\"\nHELLO_VERSION = \"2\"");
    auto reload = service.reload_async();
    pid_t candidate = service.baton().wait_instance("starting", 2);
    REQUIRE(candidate > 0);
    // Into its 503s, the candidate has answered probes and nothing else: no
    // public request reached it.
    REQUIRE(
        eventually([&] { return probe_attempts(service.baton().status(), 2) >= 3; }, 10s, 20ms));
    CHECK_FALSE(load->has_served(candidate));
    CHECK(service.baton().instance_pid("ready") == old);
    CommandResult r = reload.get();
    INFO(r.out, r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("http /healthz: 503") != std::string::npos);
    CHECK(r.out.find("http /healthz: 200") != std::string::npos);
    nlohmann::json last = service.baton().status()["last_reload"];
    CHECK(last["exec_to_ready_ms"].get<int>() >= 1500);
    CHECK(eventually([&] { return load->has_served(candidate); }));
    finish_without_failures(*load);
  }
}

TEST_CASE("checked deploy: a candidate whose /healthz never passes is rolled back") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    ProbedService service;
    pid_t old = service.baton().instance_pid("ready");
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    service.write("HELLO_HEALTH = \"fail\"", "", "1s");
    CommandResult r = service.reload();
    INFO(r.out, r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("did not pass its readiness checks within ready_timeout (1s): waiting for "
                     "http /healthz; last: http /healthz: 503") != std::string::npos);
    CHECK(service.baton().instance_pid("ready") == old);
    load::LoadResult result = finish_without_failures(*load);
    // The candidate answered probes only: every public request was the old pid's.
    CHECK(result.pids.size() == 1);
    CHECK(result.pids.count(old) == 1);
  }
}

TEST_CASE("checked deploy: while the old generation serves, baton's probes reach the candidate") {
  ProbedService service;
  pid_t old = service.baton().instance_pid("ready");
  service.write("HELLO_HEALTH = \"fail\"");
  auto reload = service.reload_async();
  pid_t candidate = service.baton().wait_instance("starting", 2);
  REQUIRE(candidate > 0);
  int to_candidate = 0, to_old = 0;
  for (int i = 0; i < 100; ++i) {
    to_candidate += pid_answering(service.address(), "127.0.0.2") == candidate;
    to_old += pid_answering(service.address(), nullptr) == old;
  }
  CHECK(to_candidate == 100);
  CHECK(to_old == 100);
  // Stop: the reload is aborted, its client told so.
  CHECK(run_command({baton_bin(), "stop", "-c", service.dir().file("baton.toml")}, 30s).exit_code ==
        0);
  CHECK(reload.get().exit_code == 1);
}

TEST_CASE("checked deploy: a failing smoke check rolls back, and the reply has its output") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    ProbedService service;
    pid_t old = service.baton().instance_pid("ready");
    auto load = start_load(service.address(), mode);
    REQUIRE(traffic_flows(*load));
    std::string smoke = service.dir().write(
        "smoke.sh",
        "#!/bin/sh\necho \"checking generation $BATON_GENERATION at $BATON_CANDIDATE_URL from "
        "$BATON_PROBE_SOURCE\"\ncurl -fsS --interface \"$BATON_PROBE_SOURCE\" "
        "\"$BATON_CANDIDATE_URL/\" | grep -q 'version 3' || { echo 'expected version 3'; exit "
        "1; }\n");
    chmod(smoke.c_str(), 0755);
    service.write("HELLO_VERSION = \"2\"",
                  fmt::format("[[smoke]]\nname = \"version\"\ncommand = [\"{}\"]\ntimeout = "
                              "\"10s\"",
                              smoke));
    CommandResult r = service.reload();
    INFO(r.out, r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("failed a smoke check: smoke version: exited with status 1") !=
          std::string::npos);
    CHECK(r.out.find(fmt::format("checking generation 2 at http://{} from 127.0.0.2",
                                 service.address())) != std::string::npos);
    CHECK(r.out.find("smoke: expected version 3") != std::string::npos);
    CHECK(service.baton().instance_pid("ready") == old);
    load::LoadResult result = finish_without_failures(*load);
    CHECK(result.pids.size() == 1);
  }
}

TEST_CASE("checked deploy: smoke checks that pass let the switch happen") {
  ProbedService service;
  std::string log = service.dir().file("smoke.log");
  service.write("HELLO_VERSION = \"2\"",
                fmt::format("[[smoke]]\ncommand = [\"sh\", \"-c\", \"curl -fsS --interface "
                            "$BATON_PROBE_SOURCE $BATON_CANDIDATE_URL/ >> {}\"]\n",
                            log));
  CommandResult r = service.reload();
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  pid_t now = service.baton().instance_pid("ready");
  CHECK(read_file(log) == fmt::format("hello from pid {} version 2\n", now));
}

TEST_CASE("checked deploy: status shows the candidate's checks while its smoke check runs") {
  ProbedService service;
  // The smoke check waits for the test's go (a file), 30s at most.
  std::string go = service.dir().file("go");
  service.write("HELLO_VERSION = \"2\"",
                fmt::format("[[smoke]]\nname = \"gate\"\ncommand = [\"sh\", \"-c\", \"i=0; "
                            "while [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); "
                            "done; [ -e {} ]\"]\n",
                            go, go));
  auto reload = service.reload_async();
  nlohmann::json s;
  REQUIRE(eventually([&] {
    s = service.baton().status();
    return s["reload_step"] == "smoke";
  }));
  const nlohmann::json& checks = s["candidate"]["checks"];
  REQUIRE(checks.size() == 2);
  CHECK(checks[0]["name"] == "ready");
  CHECK(checks[0]["state"] == "passed");
  CHECK(checks[0]["detail"].get<std::string>().starts_with("after "));
  CHECK(checks[1] == nlohmann::json{{"name", "smoke gate"}, {"state", "running"}, {"detail", ""}});
  CommandResult text = run_command({baton_bin(), "status", "-c", service.dir().file("baton.toml")});
  CHECK(text.out.find(fmt::format("\nreload in progress: generation {} (smoke)\n",
                                  s["reloading"].get<int>())) != std::string::npos);
  CHECK(text.out.find("\n  smoke gate  running\n") != std::string::npos);

  service.dir().write("go", "");
  CommandResult r = reload.get();
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  s = service.baton().status();
  CHECK(s["candidate"].is_null());
  REQUIRE(s["recent_reloads"].size() == 1);
  CHECK(s["recent_reloads"][0]["result"] == "ok");
  CHECK(s["recent_reloads"][0] == s["last_reload"]);
}

TEST_CASE("checked deploy: a failing pre_reload hook starts nothing") {
  ProbedService service;
  pid_t old = service.baton().instance_pid("ready");
  service.write("HELLO_VERSION = \"2\"",
                "[hooks]\npre_reload = [\"sh\", \"-c\", \"echo migration 0042 failed; exit 4\"]");
  CommandResult r = service.reload();
  INFO(r.out, r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("pre_reload: migration 0042 failed") != std::string::npos);
  CHECK(r.err.find("generation 2 was not started: pre_reload sh -c echo migration 0042 failed; "
                   "exit 4: exited with status 4") != std::string::npos);
  nlohmann::json status = service.baton().status();
  CHECK(status["instances"].size() == 1);
  CHECK(service.baton().instance_pid("ready") == old);
}

TEST_CASE("checked deploy: after_drained runs once per reload, after the old pid is gone") {
  ProbedService service;
  std::string log = service.dir().file("drained.log");
  for (int version = 2; version <= 4; ++version) {
    pid_t old = service.baton().instance_pid("ready");
    service.write(fmt::format("OLD_PID = \"{}\"", old),
                  fmt::format("[hooks]\nafter_drained = [\"sh\", \"-c\", \"if kill -0 $OLD_PID "
                              "2>/dev/null; then s=alive; else s=gone; fi; echo "
                              "$BATON_GENERATION $s >> {}\"]",
                              log));
    CommandResult r = service.reload(/*wait=*/true);
    INFO(r.out, r.err);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(read_file(log) == "2 gone\n3 gone\n4 gone\n");
}

TEST_CASE("checked deploy: a unix socket service is switched by rename, 20 reloads, 0 failed") {
  for (load::Mode mode : kModes) {
    CAPTURE(mode_name(mode));
    TempDir holder;
    std::string path = holder.file("app.sock");
    ProbedService service("", "http = \"/healthz\"\n", "unix:" + path);
    auto load = start_load(path, mode);
    REQUIRE(traffic_flows(*load));
    std::set<pid_t> generations = {service.baton().instance_pid("ready")};
    for (int i = 0; i < 20; ++i) {
      service.write(fmt::format("HELLO_VERSION = \"{}\"", i + 2));
      CommandResult r = service.reload();
      INFO("reload ", i + 1, ": ", r.out, r.err);
      REQUIRE(r.exit_code == 0);
      pid_t pid = service.baton().instance_pid("ready");
      generations.insert(pid);
      REQUIRE(eventually([&] { return load->has_served(pid); }));
    }
    finish_without_failures(*load);
    CHECK(generations.size() == 21);
    CHECK(service.baton().status()["sockets"][0]["listeners"] == "per-generation");
  }
}

namespace {

/// Runs `body` on a thread of its own in a new network namespace (root
/// only), with lo up and net.ipv4.tcp_migrate_req set to `migrate` there;
/// everything it starts (baton, the app, the load's threads) is inside.
/// False if the namespace cannot be made (the reason is in `why`).
bool in_network_namespace(int migrate, const std::function<void()>& body, std::string& why) {
  bool made = false;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      why = fmt::format("unshare(CLONE_NEWNET): {}", std::strerror(errno));
      return;
    }
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq lo{};
    std::strcpy(lo.ifr_name, "lo");
    bool up = sock >= 0 && ioctl(sock, SIOCGIFFLAGS, &lo) == 0 &&
              (lo.ifr_flags |= IFF_UP, ioctl(sock, SIOCSIFFLAGS, &lo) == 0);
    if (sock >= 0) close(sock);
    if (!up) {
      why = fmt::format("cannot bring lo up: {}", std::strerror(errno));
      return;
    }
    int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
    std::string value = std::to_string(migrate);
    if (fd < 0 || write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
      why = fmt::format("cannot set tcp_migrate_req: {}", std::strerror(errno));
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    made = true;
    body();
  });
  t.join();
  return made;
}

}  // namespace

TEST_CASE("checked deploy: 20 reloads at connection-per-request load, tcp_migrate_req 0 and 1") {
  for (int migrate : {0, 1}) {
    CAPTURE(migrate);
    std::string why;
    bool ran = in_network_namespace(
        migrate,
        [&] {
          ProbedService service;
          auto load = start_load(service.address(), load::Mode::kConnectionPerRequest, 8);
          REQUIRE(traffic_flows(*load));
          for (int i = 0; i < 20; ++i) {
            service.write(fmt::format("HELLO_VERSION = \"{}\"", i + 2));
            CommandResult r = service.reload();
            INFO("reload ", i + 1, ": ", r.out, r.err);
            REQUIRE(r.exit_code == 0);
            pid_t pid = service.baton().instance_pid("ready");
            REQUIRE(eventually([&] { return load->has_served(pid); }));
          }
          load::LoadResult result = finish_without_failures(*load);
          CHECK(result.failures.count(load::Failure::kReset) == 0);
        },
        why);
    if (!ran) MESSAGE("skipped: " << why);
  }
}

TEST_CASE("checked deploy: shared listeners say so, and an exec probe still gates the switch") {
  ProbedService service("listeners = \"shared\"", "exec = [\"sh\", \"-c\", \"exit 0\"]\n");
  nlohmann::json status = service.baton().status();
  CHECK(status["sockets"][0]["listeners"] == "shared: listeners = \"shared\"");
  service.write("HELLO_VERSION = \"2\"");
  CommandResult r = service.reload();
  INFO(r.out, r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("exec sh: exited with status 0") != std::string::npos);
  // An http probe there would be answered by whichever generation accepts
  // first: `check` refuses it.
  service.write("", "[ready.http]\npath = \"/healthz\"");
  CommandResult check = run_command({baton_bin(), "check", "-c", service.dir().file("baton.toml")});
  CHECK(check.exit_code == 1);
  CHECK(check.err.find("listeners = \"shared\"") != std::string::npos);
}

// End-to-end tests of `baton logs` and `reload --logs`: a follower sees a
// reload's candidate lines as they are written, and a follower that stops
// reading costs baton nothing: its lines are dropped and counted, and
// reloads of a chatty app still complete.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness.h"
#include "support/wait.h"

using namespace e2e;

namespace {

/// An fd closed when it goes out of scope.
struct Fd {
  explicit Fd(int fd) : fd(fd) {}
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  bool valid() const { return fd >= 0; }
  int get() const { return fd; }
  int fd;
};

std::string followed_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A baton running `command` (a TOML array) on one tcp socket.
std::unique_ptr<Baton> start(const TempDir& dir, const std::string& command) {
  dir.write("baton.toml",
            fmt::format("command = {}\ncontrol = \"control.sock\"\n"
                        "drain_timeout = \"5s\"\n"
                        "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
                        command));
  auto baton = std::make_unique<Baton>(dir, std::vector<std::string>{"-c", dir.file("baton.toml")},
                                       dir.file("control.sock"));
  REQUIRE(baton->wait_ready());
  return baton;
}

/// A control connection that asks to follow the logs and then never reads,
/// with a small receive buffer so that it fills soon.
Fd stalled_follower(const std::string& control) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  int small = 4096;
  REQUIRE(setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, control.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string request = "{\"command\":\"logs\",\"follow\":true,\"lines\":0}\n";
  REQUIRE(write(fd.get(), request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  return fd;
}

}  // namespace

TEST_CASE("logs: -f shows a reload's candidate lines as they are written; reload --logs too") {
  TempDir dir;
  auto baton = start(dir, fmt::format("[\"{}\"]", hello_bin()));
  std::string followed = dir.file("followed.txt");
  Fd out(open(followed.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(out.valid());
  support::SpawnOptions options;
  options.argv = {baton_bin(), "logs", "-f", "-n", "1", "--control", baton->control()};
  options.stdout_fd = out.get();
  support::Child follower = support::Child::spawn(options);
  // It follows from the moment its request is served, which its first
  // line (the last one kept) shows.
  REQUIRE(support::eventually([&] { return !followed_text(followed).empty(); }));
  CommandResult reload =
      run_command({baton_bin(), "reload", "--logs", "--control", baton->control()});
  CHECK(reload.exit_code == 0);
  pid_t pid2 = baton->wait_instance("ready", 2);
  REQUIRE(pid2 > 0);
  std::string ready_line = fmt::format("[gen 2 pid {}] hello: version", pid2);
  // reload --logs printed the candidate's output, indented, between its steps.
  CAPTURE(reload.out);
  CHECK(reload.out.find("  ") != std::string::npos);
  CHECK(reload.out.find(ready_line) != std::string::npos);
  CHECK(reload.out.find("[gen 1 pid") == std::string::npos);
  bool seen = support::eventually(
      [&] { return followed_text(followed).find(ready_line) != std::string::npos; });
  CAPTURE(followed_text(followed));
  CHECK(seen);
  CHECK(followed_text(followed).find("baton: reload requested on the control socket") !=
        std::string::npos);
  // The kept lines of generation 2 alone.
  CommandResult gen2 =
      run_command({baton_bin(), "logs", "--generation", "2", "--control", baton->control()});
  CHECK(gen2.exit_code == 0);
  CHECK(gen2.out.find(ready_line) != std::string::npos);
  CHECK(gen2.out.find("[gen 1 pid") == std::string::npos);
  // The follower ends with baton, exit 0.
  CHECK(run_command({baton_bin(), "stop", "--control", baton->control()}).exit_code == 0);
  auto status = follower.wait(10s);
  REQUIRE(status.has_value());
  CHECK(support::exit_code(*status) == 0);
}

TEST_CASE("logs: a follower that stops reading does not slow a chatty app's reloads") {
  TempDir dir;
  // 100 lines, then 10 ms, over and over: about 10,000 lines a second.
  std::string app = dir.write(
      "chatty.sh",
      fmt::format("#!/bin/sh\n(while :; do i=0; while [ $i -lt 100 ]; do "
                  "echo \"chatter $i: some text to fill a line of output\"; i=$((i+1)); done; "
                  "sleep 0.01; done) &\nexec {}\n",
                  hello_bin()));
  REQUIRE(chmod(app.c_str(), 0755) == 0);
  auto baton = start(dir, fmt::format("[\"{}\"]", app));
  Fd stalled = stalled_follower(baton->control());
  for (int i = 0; i < 3; ++i) {
    CommandResult reload = run_command({baton_bin(), "reload", "--control", baton->control()}, 20s);
    CAPTURE(reload.err);
    CHECK(reload.exit_code == 0);
  }
  CHECK(baton->wait_instance("ready", 4) > 0);
  // Lines were dropped for it (the chatter goes on after the reloads)...
  auto dropped = [&] {
    CommandResult m = run_command({baton_bin(), "metrics", "--control", baton->control()});
    return m.exit_code == 0 &&
           m.out.find("baton_log_lines_dropped_total{reader=\"follower\"} 0\n") ==
               std::string::npos &&
           m.out.find("baton_log_lines_dropped_total{reader=\"follower\"} ") != std::string::npos;
  };
  CHECK(support::eventually(dropped, 20s, 50ms));
  CommandResult metrics = run_command({baton_bin(), "metrics", "--control", baton->control()});
  CHECK(metrics.out.find("baton_reloads_total{result=\"ok\"} 3\n") != std::string::npos);
  // ...and once it reads again, it is told how many.
  std::string got;
  bool told = support::eventually(
      [&] {
        char buf[65536];
        ssize_t n;
        while ((n = recv(stalled.get(), buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, n);
        return got.find("\"event\":\"dropped\"") != std::string::npos;
      },
      20s, 5ms);
  CHECK(told);
}

// End-to-end tests: the control socket under hostile clients and untrusted
// directories. Idle, malformed and surplus clients get an exact answer (or
// are closed on time) and baton keeps serving; a socket in a directory
// others can write to is used by no side.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "harness.h"

using namespace e2e;

namespace {

using Clock = std::chrono::steady_clock;

/// `status`'s row for the serving generation's only instance, ready:
/// "1    serving  4312   ready  1.2s ...".
std::regex instance_row(pid_t pid) {
  return std::regex(fmt::format("\\n1 +serving +{} +ready +", pid));
}

constexpr const char* kAdvice =
    "refusing to use it (remove it, or set XDG_RUNTIME_DIR or `control`)";

/// A hello service with its control socket at `control` (relative to the
/// config), and [environment] `env`.
std::string write_config(const TempDir& dir, const std::string& control,
                         const std::string& extra = "", const std::string& env = "") {
  return dir.write("baton.toml",
                   fmt::format("command = [\"{}\"]\ncontrol = \"{}\"\n{}\n[environment]\n{}\n"
                               "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
                               hello_bin(), control, extra, env));
}

/// A connected client socket, closed at the end of the scope.
class Client {
 public:
  explicit Client(const std::string& path) : fd_(connect_stream(path)) {}
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  Client(Client&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int fd() const { return fd_; }
  bool send(const std::string& bytes) const {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  void close_now() {
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

/// What a client read until baton closed the connection (or `timeout`).
struct Reading {
  std::string data;
  /// Baton closed: EOF, or ECONNRESET when it closed with input unread.
  bool closed = false;
};

Reading read_until_closed(int fd, Millis timeout) {
  Reading r;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return r;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      r.data.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno == ECONNRESET) {
      r.closed = true;
      return r;
    }
  }
}

/// The one JSON line in `data`, or null if it is not exactly one line.
nlohmann::json one_reply(const std::string& data) {
  if (data.empty() || data.find('\n') != data.size() - 1) return nullptr;
  return nlohmann::json::parse(data, nullptr, false);
}

nlohmann::json refusal(const std::string& error) {
  return {{"ok", false}, {"error", error}};
}

CommandResult baton_command(const std::string& command, const std::string& control) {
  return run_command({baton_bin(), command, "--control", control});
}

std::string untrusted(const std::string& dir, int uid, const char* mode) {
  return fmt::format("control socket directory {} is owned by uid {} and mode {}: {}", dir, uid,
                     mode, kAdvice);
}

int make_dir(const std::string& path, mode_t mode, uid_t owner = 0) {
  if (mkdir(path.c_str(), 0700) != 0) return -1;
  if (chown(path.c_str(), owner, owner) != 0) return -1;
  return chmod(path.c_str(), mode);
}

/// A unix socket listening at `path`, as an impostor would bind it.
int listen_unix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/// The sum of N over log lines "control socket: <verb> N connection(s)<rest>",
/// and how many such lines there are.
std::pair<int, int> logged_connections(const std::string& log, const std::string& verb,
                                       const std::string& rest) {
  std::regex line("control socket: " + verb + " ([0-9]+) connections?" + rest);
  int total = 0, lines = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    total += std::stoi((*it)[1]);
    ++lines;
  }
  return {total, lines};
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<Millis>(Clock::now() - t).count();
}

/// A python app that takes its socket from LISTEN_FDS and sends
/// STATUS=caf\xe9 (Latin-1) and READY=1; with APP_FAIL set it writes a
/// Latin-1 line to stderr and exits 3 before READY=1.
constexpr const char* kLatin1App = R"(import os, signal, socket, sys

def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(message, address)
    s.close()

if os.environ.get("APP_FAIL"):
    sys.stderr.buffer.write(b"d\xe9j\xe0 vu: failing at boot\n")
    sys.stderr.buffer.flush()
    sys.exit(3)
assert os.environ["LISTEN_FDS"] == "1"
listener = socket.socket(fileno=3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
notify(b"STATUS=caf\xe9\nREADY=1")
while True:
    signal.pause()
)";

std::string write_latin1_config(const TempDir& dir, const std::string& env) {
  std::string app = dir.write("latin1_app.py", kLatin1App);
  return dir.write(
      "baton.toml",
      fmt::format("command = [\"/usr/bin/python3\", \"{}\"]\ncontrol = \"control.sock\"\n"
                  "ready_timeout = \"10s\"\n[environment]\n{}\n"
                  "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
                  app, env));
}

}  // namespace

TEST_CASE("control: baton run refuses a control socket directory others could write to") {
  struct Case {
    const char* name;
    std::function<int(const TempDir&)> make;  // creates DIR/ctl
    std::string (*message)(const TempDir&);
  };
  const Case cases[] = {
      {"mode 0777", [](const TempDir& d) { return make_dir(d.file("ctl"), 0777); },
       [](const TempDir& d) { return untrusted(d.file("ctl"), 0, "0777"); }},
      {"sticky 1777", [](const TempDir& d) { return make_dir(d.file("ctl"), 01777); },
       [](const TempDir& d) { return untrusted(d.file("ctl"), 0, "1777"); }},
      {"owned by uid 65534", [](const TempDir& d) { return make_dir(d.file("ctl"), 0700, 65534); },
       [](const TempDir& d) { return untrusted(d.file("ctl"), 65534, "0700"); }},
      {"a symbolic link",
       [](const TempDir& d) {
         if (make_dir(d.file("real"), 0700) != 0) return -1;
         return symlink(d.file("real").c_str(), d.file("ctl").c_str());
       },
       [](const TempDir& d) {
         return fmt::format("control socket directory {} is a symbolic link: {}", d.file("ctl"),
                            kAdvice);
       }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    TempDir dir;
    REQUIRE(c.make(dir) == 0);
    std::string config = write_config(dir, "ctl/control.sock");
    Baton baton(dir, {"-c", config}, dir.file("ctl/control.sock"));
    CHECK(baton.wait_exit() == 111);
    std::string log = baton.log();
    INFO(log);
    CHECK(log.find("critical: " + c.message(dir) + "\n") != std::string::npos);
    CHECK_FALSE(path_exists(dir.file("ctl/control.sock")));
    CHECK(log.find("[gen 1") == std::string::npos);  // no app was started
  }
}

TEST_CASE("control: status and stop refuse an untrusted directory and never connect there") {
  TempDir dir;
  // An impostor's socket in a directory anyone may write to.
  REQUIRE(make_dir(dir.file("evil"), 0777) == 0);
  std::string evil = dir.file("evil/control.sock");
  int impostor = listen_unix(evil);
  REQUIRE(impostor >= 0);
  for (const char* command : {"stop", "status", "reload"}) {
    CAPTURE(command);
    CommandResult r = baton_command(command, evil);
    CHECK(r.exit_code == 111);
    CHECK(r.err == "baton: " + untrusted(dir.file("evil"), 0, "0777") + "\n");
    CHECK(r.out == "");
  }
  CHECK(accept(impostor, nullptr, nullptr) == -1);  // nobody ever connected
  CHECK(errno == EAGAIN);
  close(impostor);

  // A real baton whose directory turns untrusted: clients refuse it, and it
  // is not stopped; once the directory is fixed they work again.
  std::string control = dir.file("ctl/control.sock");
  Baton baton(dir, {"-c", write_config(dir, "ctl/control.sock")}, control);
  REQUIRE(baton.wait_ready());
  struct stat st;
  REQUIRE(lstat(dir.file("ctl").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);  // created owner-only
  REQUIRE(chmod(dir.file("ctl").c_str(), 0777) == 0);
  for (const char* command : {"stop", "status"}) {
    CommandResult r = baton_command(command, control);
    CHECK(r.exit_code == 111);
    CHECK(r.err == "baton: " + untrusted(dir.file("ctl"), 0, "0777") + "\n");
  }
  REQUIRE(chown(dir.file("ctl").c_str(), 65534, 65534) == 0);
  REQUIRE(chmod(dir.file("ctl").c_str(), 0700) == 0);
  CommandResult r = baton_command("stop", control);
  CHECK(r.exit_code == 111);
  CHECK(r.err == "baton: " + untrusted(dir.file("ctl"), 65534, "0700") + "\n");
  CHECK_FALSE(baton.wait_exit(0ms).has_value());  // still running

  REQUIRE(chown(dir.file("ctl").c_str(), 0, 0) == 0);
  CHECK(baton_command("status", control).exit_code == 0);
  CommandResult stop = baton_command("stop", control);
  CHECK(stop.exit_code == 0);
  CHECK(stop.out == "baton: stopping (draining the app)\nbaton: stopped\n");
  CHECK(baton.wait_exit() == 0);
}

TEST_CASE("control: under a 64-fd limit, 50 idle clients cannot lock status out") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  // The harness passes "-E NOTIFY_SOCKET=..." first (it is in the
  // environment already); the rest is baton's command line.
  std::string launcher =
      dir.write("limit.sh", "#!/bin/sh\nshift 2\nexec /usr/bin/prlimit --nofile=64:64 -- \"$@\"\n");
  REQUIRE(chmod(launcher.c_str(), 0755) == 0);
  Baton baton(dir, {baton_bin(), "run", "-c", write_config(dir, "control.sock")}, control,
              launcher);
  REQUIRE(baton.wait_ready());
  CHECK(baton.log().find("info: control socket: at most 16 connections at once (a quarter of "
                         "RLIMIT_NOFILE 64)\n") != std::string::npos);

  auto start = Clock::now();
  std::vector<Client> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back(control);
    REQUIRE(clients.back().fd() >= 0);
  }
  // Beyond the cap, clients are told at once and closed.
  const std::string too_many = "too many control connections (16 open); try again in a few seconds";
  for (size_t i = 16; i < clients.size(); ++i) {
    CAPTURE(i);
    Reading r = read_until_closed(clients[i].fd(), 3s);
    CHECK(r.closed);
    CHECK(one_reply(r.data) == refusal(too_many));
  }
  CommandResult busy = baton_command("status", control);
  CHECK(busy.exit_code == 1);
  CHECK(busy.err == "baton: " + too_many + "\n");

  // The 16 idle ones are closed once their 5s are up, and status works.
  for (size_t i = 0; i < 16; ++i) {
    CAPTURE(i);
    Reading r = read_until_closed(clients[i].fd(), 8s);
    CHECK(r.closed);
    CHECK(r.data == "");
  }
  CHECK(ms_since(start) >= 4900);
  CHECK(baton_command("status", control).exit_code == 0);

  // Logged, but not once per connection: held lines come out at the end
  // of the 5s interval.
  std::pair<int, int> closed, refused;
  CHECK(eventually(
      [&] {
        std::string log = baton.log();
        closed = logged_connections(log, "closed", " that sent no complete request within 5s\n");
        refused =
            logged_connections(log, "refused", ": too many control connections \\(16 open\\)\n");
        return closed.first == 16 && refused.first == 35;
      },
      8s));
  CHECK(closed.first == 16);
  CHECK(closed.second <= 2);
  CHECK(refused.first == 35);
  CHECK(refused.second <= 2);
  CHECK(baton.log().find("info: control socket: closed ") != std::string::npos);
  CHECK(baton.log().find("warning: control socket: refused ") != std::string::npos);
}

TEST_CASE("control: idle clients are closed after 5s, a reload waiting longer is not") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  std::string config = write_config(dir, "control.sock", "ready_timeout = \"20s\"");
  Baton baton(dir, {"-c", config}, control);
  REQUIRE(baton.wait_ready());
  pid_t old = baton.instance_pid("ready");

  auto start = Clock::now();
  Client idle(control), partial(control);
  REQUIRE(partial.send("{\"command\":"));
  // Generation 2 takes 6.5s to be ready: longer than the request timeout.
  write_config(dir, "control.sock", "ready_timeout = \"20s\"", "HELLO_BOOT_DELAY_MS = \"6500\"");
  auto reload = std::async(std::launch::async, [&] {
    return run_command({baton_bin(), "reload", "-c", config}, 30s);
  });
  for (Client* c : {&idle, &partial}) {
    Reading r = read_until_closed(c->fd(), 8s);
    CHECK(r.closed);
    CHECK(r.data == "");
    CHECK(ms_since(start) >= 4900);
  }
  CHECK(reload.wait_for(0s) == std::future_status::timeout);  // still waiting for READY
  CommandResult r = reload.get();
  INFO(r.out, r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("baton: reload done: generation 2 (pid ") != std::string::npos);
  CHECK(ms_since(start) >= 6500);
  auto status = baton.status();
  CHECK(status["generation"] == 2);
  CHECK(baton.instance_pid("ready") != old);
  // The two were accepted in the same loop turn or in two: one line for
  // both, or a second one held until the end of the 5s log interval.
  std::pair<int, int> closed;
  CHECK(eventually(
      [&] {
        closed =
            logged_connections(baton.log(), "closed", " that sent no complete request within 5s\n");
        return closed.first == 2;
      },
      8s));
  CHECK(closed.first == 2);
  CHECK(closed.second <= 2);
}

TEST_CASE("control: out of fds, a client is told why, and baton serves again once fds free up") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  Baton baton(dir, {"-c", write_config(dir, "control.sock")}, control);
  REQUIRE(baton.wait_ready());
  pid_t pid = baton.pid();
  std::set<int> fds = open_fds(pid);
  // The status client can exit before baton has closed its end of the
  // connection: wait for that fd to be gone, so that the limit set below is
  // exactly the fds baton holds while idle.
  REQUIRE(baton_command("status", control).exit_code == 0);
  REQUIRE(eventually([&] { return open_fds(pid) == fds; }));
  int lowest_free = 0;
  while (fds.count(lowest_free)) ++lowest_free;
  // The control server's reserve is the first /dev/null after stdin (libuv
  // opens one of its own, later, when the first app's output pipe opens).
  int reserve = -1;
  for (int fd : fds) {
    if (fd > 2 && reserve < 0 && fd_link(pid, fd) == "/dev/null") reserve = fd;
  }
  // Every fd below the new limit is taken; the reserved one is among them.
  REQUIRE(reserve >= 0);
  REQUIRE(reserve < lowest_free);
  rlimit own{};
  getrlimit(RLIMIT_NOFILE, &own);
  std::string prlimit = "/usr/bin/prlimit";
  REQUIRE(
      run_command({prlimit, "--pid", std::to_string(pid), fmt::format("--nofile={}:", lowest_free)})
          .exit_code == 0);

  std::string why = fmt::format("Too many open files (RLIMIT_NOFILE {})", lowest_free);
  for (int i = 0; i < 2; ++i) {
    CommandResult r = baton_command("status", control);
    CHECK(r.exit_code == 1);
    CHECK(r.err == "baton: baton cannot take this connection: " + why + "\n");
  }
  CHECK(eventually([&] {
    return baton.log().find("warning: control socket: refused 1 connection: cannot accept: " + why +
                            "\n") != std::string::npos;
  }));

  REQUIRE(run_command(
              {prlimit, "--pid", std::to_string(pid), fmt::format("--nofile={}:", own.rlim_cur)})
              .exit_code == 0);
  CHECK(baton_command("status", control).exit_code == 0);
  // Nothing leaked, and the reserve is held again, once the connection's fd is closed.
  CHECK(eventually([&] { return open_fds(pid) == fds; }));
}

TEST_CASE("control: malformed requests get an error reply and never stop baton") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  Baton baton(dir, {"-c", write_config(dir, "control.sock")}, control);
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  struct Case {
    std::string bytes;
    std::string error;  // empty: no reply expected
  };
  const Case cases[] = {
      {"{\"command\":5}\n", "\"command\" must be a string, not a number"},
      {"null\n", "the request must be a JSON object, not null"},
      {"[\"status\"]\n", "the request must be a JSON object, not an array"},
      {"{\"command\":\"reload\",\"wait\":1}\n", "\"wait\" must be true or false, not a number"},
      {"{\"command\":\"status\",\"extra\":true}\n", "unknown key \"extra\" in the request"},
      {"not json\n", "the request is not valid JSON"},
      {"\xff\xfe\xc3\x28\xe9\n", "the request is not valid JSON"},
      {"{\"command\":\"st\xe9tus\"}\n", "the request is not valid JSON"},
      {std::string(70 * 1024, 'x'), "request too long: no newline within 65536 bytes"},
      {std::string(60 * 1024, '[') + "\n", "the request is not valid JSON"},
      {"", ""},  // connects and closes at once
  };
  for (const Case& c : cases) {
    CAPTURE(c.bytes.substr(0, 40));
    Client client(control);
    REQUIRE(client.fd() >= 0);
    if (c.error.empty()) {
      client.close_now();
    } else {
      client.send(c.bytes);  // the 70 KiB one may be cut short when baton closes
      Reading r = read_until_closed(client.fd(), 5s);
      CHECK(r.closed);
      CHECK(one_reply(r.data) == refusal(c.error));
    }
    CommandResult status = baton_command("status", control);
    CHECK(status.exit_code == 0);
    CHECK(std::regex_search(status.out, instance_row(app)));
  }
  CHECK(baton.log().find("internal error") == std::string::npos);
  CHECK(baton_command("stop", control).exit_code == 0);
  CHECK(baton.wait_exit() == 0);
}

TEST_CASE("control: an app's Latin-1 STATUS= shows as U+FFFD in status and status --json") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  Baton baton(dir, {"-c", write_latin1_config(dir, "")}, control);
  REQUIRE(baton.wait_ready());
  pid_t app = baton.instance_pid("ready");
  REQUIRE(app > 0);

  CommandResult text = baton_command("status", control);
  CHECK(text.exit_code == 0);
  CHECK(std::regex_search(text.out, instance_row(app)));
  CHECK(text.out.find("  \"caf\xef\xbf\xbd\"\n") != std::string::npos);
  CommandResult json = run_command({baton_bin(), "status", "--json", "--control", control});
  CHECK(json.exit_code == 0);
  auto status = nlohmann::json::parse(json.out, nullptr, false);
  REQUIRE(status.is_object());
  CHECK(status["instances"][0]["status"] == "caf\xef\xbf\xbd");
  CHECK(baton_command("stop", control).exit_code == 0);
  CHECK(baton.wait_exit() == 0);
}

TEST_CASE("control: a failed reload's Latin-1 stderr line comes back replaced, baton runs on") {
  TempDir dir;
  std::string control = dir.file("control.sock");
  std::string config = write_latin1_config(dir, "");
  Baton baton(dir, {"-c", config}, control);
  REQUIRE(baton.wait_ready());
  pid_t old = baton.instance_pid("ready");
  REQUIRE(old > 0);

  write_latin1_config(dir, "APP_FAIL = \"1\"");
  CommandResult r = run_command({baton_bin(), "reload", "-c", config});
  INFO(r.out, r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("baton: reload failed: generation 2 pid ") == 0);
  CHECK(r.err.find(fmt::format("exited with status 3 before READY=1; generation 1 (pid {}) keeps "
                               "serving",
                               old)) != std::string::npos);
  CHECK(r.err.find("baton: the new generation's last stderr lines:\n"
                   "  d\xef\xbf\xbdj\xef\xbf\xbd vu: failing at boot\n") != std::string::npos);
  auto status = baton.status();
  CHECK(status["generation"] == 1);
  CHECK(status["instances"].size() == 1);
  CHECK(status["instances"][0]["pid"] == old);
  CHECK(status["last_reload"]["result"] == "rolled back");
  CHECK(baton_command("stop", control).exit_code == 0);
  CHECK(baton.wait_exit() == 0);
}

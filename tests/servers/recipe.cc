// The recipe runner (recipe.h) and what it needs to see from outside the
// servers: which process accepted a connection (sock_diag and /proc/PID/fd),
// a listener's backlog (sock_diag), a process group's members.
#include "recipe.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "harness.h"
#include "load_support.h"
#include "supervisor/duration.h"

namespace servers {

using namespace e2e;
namespace fs = std::filesystem;

namespace {

/// Whether `pid`'s `fd` has O_NONBLOCK, from /proc/PID/fdinfo/FD ("flags:"
/// in octal); false if it cannot be read.
bool is_nonblocking(pid_t pid, int fd) {
  std::ifstream in(fmt::format("/proc/{}/fdinfo/{}", pid, fd));
  std::string key;
  std::string flags;
  while (in >> key >> flags) {
    if (key == "flags:") return (std::stoul(flags, nullptr, 8) & O_NONBLOCK) != 0;
  }
  return false;
}

constexpr int kReloads = 3;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Copies the recipe's directories into `dir`, "8080" replaced by `port`.
void install(const Recipe& recipe, const TempDir& dir, int port) {
  for (const std::string& d : recipe.dirs) {
    fs::path from = fs::path(configs_dir()) / d;
    REQUIRE_MESSAGE(fs::is_directory(from), from.string(), " is missing");
    for (const auto& entry : fs::recursive_directory_iterator(from)) {
      fs::path to = fs::path(dir.path()) / fs::relative(entry.path(), from);
      if (entry.is_directory()) {
        fs::create_directories(to);
        continue;
      }
      std::string text = read_text(entry.path());
      for (size_t at; (at = text.find("8080")) != std::string::npos;) {
        text.replace(at, 4, std::to_string(port));
      }
      std::ofstream(to, std::ios::trunc) << text;
    }
  }
  if (recipe.world_readable) {
    for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
      chmod(entry.path().c_str(), entry.is_directory() ? 0755 : 0644);
    }
    chmod(dir.path().c_str(), 0755);
  }
}

/// The process group of `pid`, or -1.
pid_t group_of(pid_t pid) {
  std::string stat = read_text(fmt::format("/proc/{}/stat", pid));
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string state;
  pid_t ppid = 0, pgrp = -1;
  rest >> state >> ppid >> pgrp;
  return pgrp;
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (!proc) return pids;
  while (dirent* e = readdir(proc)) {
    if (std::all_of(e->d_name, e->d_name + strlen(e->d_name), ::isdigit)) {
      pids.push_back(std::stoi(e->d_name));
    }
  }
  closedir(proc);
  return pids;
}

/// The live processes of group `pgid`.
std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  for (pid_t p : all_pids()) {
    if (group_of(p) == pgid && process_exists(p)) members.push_back(p);
  }
  return members;
}

/// The pid of a process with an fd on socket inode `inode`, or -1.
pid_t holder_of(ino_t inode) {
  const std::string target = fmt::format("socket:[{}]", inode);
  for (pid_t p : all_pids()) {
    for (int fd : open_fds(p)) {
      if (fd_link(p, fd) == target) return p;
    }
  }
  return -1;
}

/// The inode of the established TCP socket 127.0.0.1:local <- 127.0.0.1:remote
/// (0: none, or not accepted yet).
ino_t tcp_inode(int local, int remote) {
  for (const support::TcpSocket& s : support::loopback_tcp_sockets(1U << TCP_ESTABLISHED)) {
    if (s.local_port == local && s.remote_port == remote) return s.inode;
  }
  return 0;
}

int local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

/// The process group that accepted the connection `fd` to `port`, once it
/// has (-1 after 10s).
pid_t accepting_group(int fd, int port) {
  pid_t group = -1;
  int client = local_port(fd);
  eventually([&] {
    ino_t inode = tcp_inode(port, client);
    pid_t holder = inode ? holder_of(inode) : -1;
    if (holder > 0) group = group_of(holder);
    return group > 0;
  });
  return group;
}

/// The process group that accepts a new connection to `port`: a request
/// head is sent in part, so that the server accepts and waits for the rest.
pid_t serving_group(int port) {
  int fd = connect_stream(fmt::format("127.0.0.1:{}", port));
  if (fd < 0) return -1;
  const std::string head = "GET / HTTP/1.1\r\nHost: localhost\r\n";
  pid_t group = send(fd, head.data(), head.size(), MSG_NOSIGNAL) == ssize_t(head.size())
                    ? accepting_group(fd, port)
                    : -1;
  close(fd);
  return group;
}

/// True while a process of group `pgid` holds an fd on `socket` ("socket:[N]").
bool group_holds(pid_t pgid, const std::string& socket) {
  for (pid_t p : group_members(pgid)) {
    for (int fd : open_fds(p)) {
      if (fd_link(p, fd) == socket) return true;
    }
  }
  return false;
}

/// The backlog of every TCP listener on 127.0.0.1:port.
std::vector<int> listen_backlogs(int port) {
  std::vector<int> backlogs;
  for (const support::TcpSocket& s : support::loopback_tcp_sockets(1U << TCP_LISTEN)) {
    if (s.local_port == port) backlogs.push_back(s.send_queue);
  }
  return backlogs;
}

/// The backlog baton gives the recipe's socket: its `backlog`, else the
/// system maximum; the kernel caps either at net.core.somaxconn.
int expected_backlog(const std::string& config) {
  int somaxconn = std::stoi(read_text("/proc/sys/net/core/somaxconn"));
  std::smatch m;
  if (std::regex_search(config, m, std::regex(R"(\nbacklog = (\d+))"))) {
    return std::min(std::stoi(m[1]), somaxconn);
  }
  return somaxconn;
}

/// One response read off a connection that may stay open.
struct Answer {
  std::string error;  // "" when a whole response arrived
  int status = 0;
  bool says_close = false;  // "Connection: close", or HTTP/1.0 without keep-alive
  std::string body;
};

/// Reads one response (framed by Content-Length) from `fd`.
Answer read_answer(int fd, Millis timeout = 5s) {
  Answer a;
  const auto deadline = Clock::now() + timeout;
  std::string data;
  size_t head_end = std::string::npos, need = std::string::npos;
  while (need == std::string::npos || data.size() < need) {
    if (wait_fd(fd, POLLIN, deadline) != 1) {
      a.error =
          fmt::format("no complete response within {}ms ({} bytes)", timeout.count(), data.size());
      return a;
    }
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      a.error = n == 0 ? fmt::format("EOF after {} bytes", data.size())
                       : fmt::format("recv: {} after {} bytes", strerror(errno), data.size());
      return a;
    }
    data.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
      std::string head = data.substr(0, head_end);
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      a.status = std::stoi(head.substr(9, 3));
      bool http10 = head.starts_with("HTTP/1.0");
      bool close = lower.find("\r\nconnection: close") != std::string::npos;
      bool keep = lower.find("\r\nconnection: keep-alive") != std::string::npos;
      a.says_close = close || (http10 && !keep);
      std::smatch m;
      if (!std::regex_search(lower, m, std::regex(R"(\r\ncontent-length: *(\d+))"))) {
        a.error = "no Content-Length";
        return a;
      }
      need = head_end + 4 + std::stoul(m[1]);
    }
  }
  a.body = data.substr(head_end + 4);
  return a;
}

/// Sends GET `path` (HTTP/1.1, the connection kept unless `close`).
bool send_request(int fd, const std::string& path, bool close = false) {
  std::string r = fmt::format("GET {} HTTP/1.1\r\nHost: localhost\r\n{}\r\n", path,
                              close ? "Connection: close\r\n" : "");
  return send(fd, r.data(), r.size(), MSG_NOSIGNAL) == ssize_t(r.size());
}

/// True once the peer has closed `fd` (EOF or reset), within `timeout`.
bool closed_by_peer(int fd, Millis timeout) {
  if (wait_fd(fd, POLLIN, Clock::now() + timeout) != 1) return false;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/// The fastest of `n` requests in a row on one keep-alive connection. A
/// server that writes a response in parts without TCP_NODELAY waits for the
/// client's delayed ACK (40ms) on every one.
Millis fastest_keep_alive_request(const std::string& address, int n = 20) {
  Millis fastest = 1h;
  int fd = connect_stream(address);
  if (fd < 0) return fastest;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!send_request(fd, "/") || read_answer(fd).error != "") break;
    fastest = std::min(fastest, std::chrono::duration_cast<Millis>(Clock::now() - t0));
  }
  close(fd);
  return fastest;
}

/// Closes an fd when the test ends, however it ends.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

/// How generation `generation`'s drain ended, from baton's log line
/// "generation G: pid P <how>" ("... after draining for 1.2s", or "killed by
/// SIGKILL after drain_timeout (10s)").
std::optional<std::string> drained(const std::string& log, int generation) {
  const std::regex line(fmt::format(
      R"(\] info: generation {}: pid \d+ ((.* after draining for \S+)|(killed by SIGKILL after drain_timeout .*)))",
      generation));
  std::smatch m;
  if (!std::regex_search(log, m, line)) return std::nullopt;
  return m[1].str();
}

/// Checks that a drain ended as the recipe says, within `drain_timeout`.
void check_drain(const Recipe& recipe, const std::string& how, baton::Millis drain_timeout) {
  INFO("drain: ", how);
  const std::string prefix = recipe.drain_exit + " after draining for ";
  REQUIRE(how.starts_with(prefix));
  auto took = baton::parse_duration(how.substr(prefix.size()));
  REQUIRE(took.ok());
  CHECK(*took < drain_timeout);
}

/// `listener`: what fd 3, baton's socket, was in the old instance.
bool drain_started(const Recipe& recipe, const Baton& baton, int generation, pid_t pid,
                   const std::string& listener) {
  const std::string& text = recipe.drain_started.text;
  if (text.empty()) return !group_holds(pid, listener);
  const std::string prefix = fmt::format("[gen {} pid {}] ", generation, pid);
  std::istringstream in(baton.log());
  for (std::string line; std::getline(in, line);) {
    auto at = line.find(prefix);
    if (at != std::string::npos && line.find(text, at) != std::string::npos) return true;
  }
  return false;
}

/// True once generation `generation` has an instance that is ready.
bool candidate_ready(const nlohmann::json& status, int generation) {
  for (const auto& i : status["instances"]) {
    if (i["generation"] == generation && i["state"] == "ready") return true;
  }
  return false;
}

std::string describe_failures(const load::LoadResult& r) {
  std::string out;
  for (load::Failure f : load::kAllFailures) {
    auto it = r.failures.find(f);
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", load::to_string(f),
                       it == r.failures.end() ? 0 : it->second);
  }
  return out;
}

}  // namespace

std::string configs_dir() {
  return std::string(SOURCE_DIR) + "/tests/servers/configs";
}

void run_recipe(const Recipe& recipe) {
  const auto started = Clock::now();
  for (const std::string& b : recipe.binaries) {
    INFO(b, " is missing: scripts/install-deps installs it");
    REQUIRE(access(b.c_str(), b.ends_with(".so") ? R_OK : X_OK) == 0);
  }
  TempDir dir("baton-" + recipe.name);
  const int port = free_port();
  install(recipe, dir, port);
  const std::string config = dir.file("baton.toml");
  const std::string config_text = read_text(config);
  std::smatch timeout_text;
  REQUIRE(
      std::regex_search(config_text, timeout_text, std::regex(R"(\ndrain_timeout = "([^"]+)\")")));
  auto drain_timeout = baton::parse_duration(timeout_text[1].str());
  REQUIRE(drain_timeout.ok());

  Baton baton(dir, {"-c", config}, dir.file("control.sock"));
  INFO("baton's log:\n", baton.log());  // evaluated only on failure
  REQUIRE(baton.wait_ready(60s));
  const std::string address = fmt::format("127.0.0.1:{}", port);
  pid_t serving = baton.instance_pid("ready");
  REQUIRE(serving > 0);
  const std::string listener = fd_link(serving, 3);
  // baton's doing where the server never sets O_NONBLOCK itself (most do).
  if (recipe.nonblocking_listener) CHECK(is_nonblocking(serving, 3));
  std::set<pid_t> generations = {serving};

  // New connections reach the instance baton started; its listener keeps
  // the backlog baton gave it.
  CHECK(serving_group(port) == serving);
  std::vector<int> backlogs = listen_backlogs(port);
  CHECK_FALSE(backlogs.empty());
  for (int b : backlogs) CHECK(b == expected_backlog(config_text));
  CHECK_FALSE(baton.status()["sockets"][0].contains("backlog_changed"));

  const bool keeps_alive = recipe.keep_alive == KeepAlive::kClosedAtDrain ||
                           recipe.keep_alive == KeepAlive::kAnsweredWithClose;
  if (keeps_alive) CHECK(fastest_keep_alive_request(address) < 20ms);

  // Load in each client mode that loses nothing with this server.
  std::vector<load::Mode> modes = {load::Mode::kConnectionPerRequest};
  if (recipe.keep_alive == KeepAlive::kNone || recipe.keep_alive == KeepAlive::kAnsweredWithClose) {
    modes.push_back(load::Mode::kKeepAlive);
  }
  std::vector<std::unique_ptr<load::LoadRun>> loads;
  for (load::Mode mode : modes) {
    loads.push_back(start_load(address, mode, 2));
    REQUIRE(traffic_flows(*loads.back()));
  }

  // A keep-alive connection, idle across the first drain.
  Fd idle{connect_stream(address)};
  REQUIRE(idle.fd >= 0);
  REQUIRE(send_request(idle.fd, "/"));
  Answer first = read_answer(idle.fd);
  INFO("first answer on a keep-alive connection: ", first.error, " ", first.status);
  REQUIRE(first.error == "");
  CHECK(first.status == 200);
  if (recipe.keep_alive == KeepAlive::kNone) {
    CHECK(first.says_close);
  } else {
    CHECK_FALSE(first.says_close);
  }
  if (recipe.keep_alive == KeepAlive::kDroppedAfterEachResponse) {
    CHECK(closed_by_peer(idle.fd, 5s));
  }

  // A request in flight across the first drain, accepted by generation 1.
  Fd in_flight{connect_stream(address)};
  REQUIRE(in_flight.fd >= 0);
  if (recipe.in_flight == InFlight::kHeldResponse) {
    REQUIRE(send_request(in_flight.fd, "/hold", true));
  } else {
    const std::string head = "GET / HTTP/1.1\r\nHost: localhost\r\n";
    REQUIRE(send(in_flight.fd, head.data(), head.size(), MSG_NOSIGNAL) == ssize_t(head.size()));
  }
  CHECK(accepting_group(in_flight.fd, port) == serving);

  for (int i = 1; i <= kReloads; ++i) {
    const int generation = i + 1;
    const pid_t old = serving;
    // It returns once the new generation serves and the old one has been
    // told to drain.
    auto pending = std::async(std::launch::async, [&] {
      return run_command({baton_bin(), "reload", "-c", config}, 120s);
    });
    if (i == 1 && keeps_alive) {
      // The idle connection is used until the candidate is ready (a server
      // closes a connection idle for its keep-alive timeout, which a slow
      // start could outlast); the drain signal comes at least 50ms later.
      while (pending.wait_for(0s) != std::future_status::ready) {
        std::optional<nlohmann::json> s = baton.try_status();
        if (s && candidate_ready(*s, generation)) break;
        REQUIRE(send_request(idle.fd, "/"));
        Answer answer = read_answer(idle.fd);
        REQUIRE(answer.error == "");
        if (!answer.says_close) continue;
        // A server may end a busy keep-alive connection, and says so (puma,
        // after 10 requests while its threads are all busy): a new one,
        // kept alive by its first answer, still from generation 1.
        close(idle.fd);
        idle.fd = connect_stream(address);
        REQUIRE(idle.fd >= 0);
        REQUIRE(send_request(idle.fd, "/"));
        answer = read_answer(idle.fd);
        REQUIRE(answer.error == "");
        REQUIRE_FALSE(answer.says_close);
      }
    }
    CommandResult reload = pending.get();
    INFO("reload to generation ", generation, ": ", reload.out, reload.err);
    REQUIRE(reload.exit_code == 0);
    nlohmann::json last = baton.status()["last_reload"];
    CHECK(last["generation"] == generation);
    CHECK(last["replaced_pid"] == old);
    serving = last["pid"].get<pid_t>();
    CAPTURE(generation);
    CHECK(serving != old);
    generations.insert(serving);
    CHECK(serving_group(port) == serving);
    for (auto& load : loads) {
      if (recipe.pid_in_body) CHECK(eventually([&] { return load->has_served(serving); }));
      CHECK(traffic_flows(*load, 20));
    }
    if (i > 1) continue;

    // The old generation drains: the request in flight is answered, the
    // idle keep-alive connection closed or answered with "Connection: close".
    REQUIRE(eventually([&] { return drain_started(recipe, baton, 1, old, listener); }, 10s, 20ms));
    if (recipe.keep_alive == KeepAlive::kAnsweredWithClose) {
      // At once: the server keeps an idle connection for a while only.
      REQUIRE(send_request(idle.fd, "/"));
      Answer again = read_answer(idle.fd);
      INFO("idle keep-alive connection after the drain signal: ", again.error);
      CHECK(again.error == "");
      CHECK(again.status == 200);
      CHECK(again.says_close);
    }
    if (recipe.in_flight == InFlight::kHeldResponse) {
      dir.write("release", "");
    } else {
      const std::string rest = "Connection: close\r\n\r\n";
      REQUIRE(send(in_flight.fd, rest.data(), rest.size(), MSG_NOSIGNAL) == ssize_t(rest.size()));
    }
    Answer held = read_answer(in_flight.fd, 10s);
    INFO("the request in flight: ", held.error);
    CHECK(held.error == "");
    CHECK(held.status == 200);
    if (recipe.pid_in_body) CHECK(held.body == fmt::format("served by pid {}\n", old));
    // After the request in flight: some servers close idle connections
    // only once their requests are answered.
    if (recipe.keep_alive == KeepAlive::kClosedAtDrain) CHECK(closed_by_peer(idle.fd, 10s));
  }

  // Each old generation exited by itself, before its drain_timeout.
  REQUIRE(baton.wait_until([](const nlohmann::json& s) { return s["instances"].size() == 1; },
                           *drain_timeout + 10s));
  std::vector<std::string> drains;
  for (int generation = 1; generation <= kReloads; ++generation) {
    // baton's log is written behind its status: the line may come a moment later.
    std::optional<std::string> how;
    eventually([&] { return (how = drained(baton.log(), generation)).has_value(); });
    INFO("generation ", generation);
    REQUIRE(how.has_value());
    check_drain(recipe, *how, *drain_timeout);
    drains.push_back(*how);
  }
  for (pid_t g : generations) {
    if (g != serving) CHECK(group_members(g).empty());
  }

  std::vector<load::LoadResult> results;
  for (auto& load : loads) results.push_back(finish_without_failures(*load));
  if (recipe.pid_in_body) {
    for (const auto& r : results) {
      for (const auto& [pid, count] : r.pids) CHECK(generations.count(pid) == 1);
    }
  }

  // No generation changed the socket's backlog.
  CHECK_FALSE(baton.status()["sockets"][0].contains("backlog_changed"));

  // baton stop drains the last generation the same way; nothing is left.
  CommandResult stop = run_command({baton_bin(), "stop", "-c", config}, 60s);
  CHECK(stop.exit_code == 0);
  CHECK(baton.wait_exit(30s) == 0);
  std::optional<std::string> stopped = drained(baton.log(), kReloads + 1);
  REQUIRE(stopped.has_value());
  check_drain(recipe, *stopped, *drain_timeout);
  for (pid_t g : generations) CHECK(group_members(g).empty());

  // What the recipe's run measured, one line on stdout.
  std::string summary = fmt::format("servers: {}:", recipe.name);
  for (size_t i = 0; i < results.size(); ++i) {
    summary += fmt::format(" [{}: ok {}, failed {} ({})]", mode_name(modes[i]), results[i].ok,
                           results[i].failed(), describe_failures(results[i]));
  }
  for (size_t i = 0; i < drains.size(); ++i) {
    summary += fmt::format(" [gen {}: {}]", i + 1, drains[i]);
  }
  summary += fmt::format(" [stop, gen {}: {}] [{:.1f}s]", kReloads + 1, *stopped,
                         std::chrono::duration<double>(Clock::now() - started).count());
  fmt::print("{}\n", summary);
  std::fflush(stdout);
}

}  // namespace servers

// Implementation of the end-to-end harness: processes, notify listener and
// loopback clients.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

extern char** environ;

namespace e2e {
namespace {

using Clock = std::chrono::steady_clock;

/// Stands for "NOTIFY_SOCKET=<this Baton's listener>" in a launcher's
/// arguments, which are built before the listener exists.
constexpr const char* kNotifyPlaceholder = "NOTIFY_SOCKET=@baton-e2e-placeholder";

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

/// Waits for child `pid` to exit, sleeping on its pidfd until the deadline.
/// Returns the raw wait status.
std::optional<int> wait_child(pid_t pid, Clock::time_point deadline) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    while (poll(&p, 1, remaining_ms(deadline)) < 0 && errno == EINTR) {
    }
    close(pidfd);
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) return status;
  return std::nullopt;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = 0;
};

Address parse_address(const std::string& address) {
  Address a;
  if (address.starts_with('/') || address.starts_with('@')) {
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, address.data(), address.size());
    if (address[0] == '@') un->sun_path[0] = '\0';
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                      (address[0] == '@' ? 0 : 1));
    a.family = AF_UNIX;
    return a;
  }
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  int port = std::stoi(address.substr(colon + 1));
  if (host.starts_with('[')) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr);
    a.length = sizeof(sockaddr_in6);
    a.family = AF_INET6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &in4->sin_addr);
    a.length = sizeof(sockaddr_in);
    a.family = AF_INET;
  }
  return a;
}

void set_timeouts(int fd, Millis timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Response failure(std::string what) {
  Response r;
  r.error = fmt::format("{}: {}", what, errno == EAGAIN ? "timeout" : std::strerror(errno));
  return r;
}

Response parse_http(const std::string& raw) {
  Response r;
  size_t head_end = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.") || head_end == std::string::npos) {
    r.error = fmt::format("invalid response: \"{}\"", raw.substr(0, 80));
    return r;
  }
  r.status = std::atoi(raw.c_str() + 9);
  r.body = raw.substr(head_end + 4);
  r.ok = true;
  return r;
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/baton-e2e.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string p = file(name);
  std::ofstream(p) << text;
  return p;
}

CommandResult run_command(const std::vector<std::string>& argv_in, Millis timeout) {
  std::vector<std::string> argv = argv_in;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
  // Built before fork: the child of a multi-threaded test (load threads)
  // may call only async-signal-safe functions, so no allocation there.
  auto args = c_strings(argv);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  CommandResult result;
  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_pipes = 2;
  while (open_pipes > 0 && remaining_ms(deadline) > 0) {
    if (poll(fds, 2, remaining_ms(deadline)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  auto status = wait_child(pid, deadline);
  if (!status) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return result;
  }
  result.exit_code = exit_code_of(*status);
  return result;
}

NotifyListener::NotifyListener() {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::random_device rd;
  std::string name = fmt::format("baton-e2e/{}/{:08x}", getpid(), rd());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    throw std::runtime_error("cannot bind the test notify socket");
  }
  env_ = "@" + name;
}

NotifyListener::~NotifyListener() {
  close(fd_);
  for (const auto& entry : fds_) close(entry.second);
}

void NotifyListener::drop_fds() {
  for (const auto& entry : fds_) close(entry.second);
  fds_.clear();
}

std::optional<std::string> NotifyListener::next(Millis timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  char buf[4097];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return std::nullopt;
  // Keep the fds that came with it (FDSTORE=1): the test may use them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds_.emplace_back(history_.size(), fd);
    }
  }
  history_.emplace_back(buf, static_cast<size_t>(n));
  return history_.back();
}

int NotifyListener::fd_of(const std::string& text) const {
  for (const auto& [index, fd] : fds_) {
    if (history_[index] == text) return fd;
  }
  return -1;
}

bool NotifyListener::wait_for(const std::function<bool(const std::string&)>& match,
                              Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (auto msg = next(Millis(remaining_ms(deadline)))) {
    if (match(*msg)) return true;
  }
  return false;
}

Baton::Baton(const TempDir& dir, std::vector<std::string> args, std::string control,
             const std::string& launcher)
    : Baton(
          dir,
          [&] {
            std::vector<std::string> argv = {baton_bin(), "run"};
            // systemd-socket-activate passes only the variables given with -E.
            if (!launcher.empty()) argv = {launcher, "-E", kNotifyPlaceholder};
            argv.insert(argv.end(), args.begin(), args.end());
            return argv;
          }(),
          std::move(control), {}, -1) {}

std::unique_ptr<Baton> Baton::with_socket(const TempDir& dir, std::vector<std::string> args,
                                          std::string control, int fd, const std::string& name) {
  // A shell in front sets LISTEN_PID to its own pid, which exec keeps.
  std::vector<std::string> argv = {"/bin/sh", "-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\"",
                                   baton_bin(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::unique_ptr<Baton>(new Baton(dir, std::move(argv), std::move(control),
                                          {"LISTEN_FDS=1", "LISTEN_FDNAMES=" + name}, fd));
}

Baton::Baton(const TempDir& dir, std::vector<std::string> argv, std::string control,
             std::vector<std::string> extra_env, int fd3)
    : log_path_(dir.file("baton.log")), control_(std::move(control)) {
  for (std::string& a : argv) {
    if (a == kNotifyPlaceholder) a = "NOTIFY_SOCKET=" + notify_.socket_env();
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    if (!v.starts_with("NOTIFY_SOCKET=") && !v.starts_with("LISTEN_")) env.emplace_back(*e);
  }
  env.push_back("NOTIFY_SOCKET=" + notify_.socket_env());
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto a = c_strings(argv);
  auto e = c_strings(env);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(log, 1);
    dup2(log, 2);
    if (fd3 >= 0) dup2(fd3, 3);  // dup2 clears CLOEXEC on the copy
    if (chdir(dir.path().c_str()) == 0) execve(a[0], a.data(), e.data());
    _exit(127);
  }
  close(log);
}

Baton::~Baton() {
  remember_app_pids();
  if (!reaped_ && pid_ > 1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // Apps run in their own process groups and outlive a killed baton.
  for (pid_t app : app_pids_) {
    if (app > 1 && process_exists(app)) kill(-app, SIGKILL);
  }
}

void Baton::remember_app_pids() {
  while (notify_.next(0ms)) {
  }
  for (const std::string& msg : notify_.history()) {
    size_t at = msg.find(" pid ");
    if (msg.starts_with("STATUS=") && at != std::string::npos) {
      app_pids_.insert(std::atoi(msg.c_str() + at + 5));
    }
  }
}

bool Baton::wait_ready(Millis timeout) {
  for (const std::string& m : notify_.history()) {
    if (m.find("READY=1") != std::string::npos) return true;
  }
  return notify_.wait_for(
      [](const std::string& m) { return m.find("READY=1") != std::string::npos; }, timeout);
}

bool Baton::wait_status(const std::string& text, Millis timeout) {
  return notify_.wait_for(
      [&](const std::string& m) {
        return m.starts_with("STATUS=") && m.find(text) != std::string::npos;
      },
      timeout);
}

nlohmann::json Baton::status() {
  CommandResult r = run_command({baton_bin(), "status", "--json", "--control", control_});
  if (r.exit_code != 0) {
    throw std::runtime_error(fmt::format("baton status failed ({}): {}", r.exit_code, r.err));
  }
  auto status = nlohmann::json::parse(r.out);
  for (const auto& i : status["instances"]) app_pids_.insert(i["pid"].get<pid_t>());
  return status;
}

pid_t Baton::instance_pid(const std::string& state) {
  nlohmann::json s = status();
  for (const auto& i : s["instances"]) {
    if (i["state"] == state) return i["pid"].get<pid_t>();
  }
  return -1;
}

std::optional<int> Baton::wait_exit(Millis timeout) {
  auto status = wait_child(pid_, Clock::now() + timeout);
  if (!status) return std::nullopt;
  reaped_ = true;
  return exit_code_of(*status);
}

std::string Baton::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int connect_stream(const std::string& address, Millis timeout) {
  Address a = parse_address(address);
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_timeouts(fd, timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a.storage), a.length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

Response http_get_on(int fd, const std::string& path) {
  std::string request =
      fmt::format("GET {} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path);
  Response r;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    r = failure("send");
  } else {
    std::string raw;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
    r = n < 0 ? failure("recv") : parse_http(raw);
  }
  close(fd);
  return r;
}

Response http_get(const std::string& address, const std::string& path, Millis timeout) {
  int fd = connect_stream(address, timeout);
  if (fd < 0) return failure("connect");
  return http_get_on(fd, path);
}

bool eventually(const std::function<bool()>& check, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (!check()) {
    if (Clock::now() >= deadline) return false;
    usleep(10'000);  // bounded by the deadline; nothing announces these states
  }
  return true;
}

Response udp_request(const std::string& address, const std::string& payload, Millis timeout) {
  Address a = parse_address(address);
  int fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  set_timeouts(fd, timeout);
  Response r;
  if (sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a.storage),
             a.length) < 0) {
    r = failure("sendto");
  } else {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      r = failure("recv");
    } else {
      r.ok = true;
      r.body.assign(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return r;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

int accept_queue_length(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    // "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000002 ..." : for a
    // listener (state 0A) the rx queue is its accept queue.
    std::istringstream in(line);
    std::string slot, local, remote, state, queues;
    in >> slot >> local >> remote >> state >> queues;
    if (state != "0A" || local.size() < 5) continue;
    if (std::stoi(local.substr(local.find(':') + 1), nullptr, 16) != port) continue;
    return std::stoi(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return -1;
}

bool process_exists(pid_t pid) {
  if (pid <= 0) return false;
  // A zombie still exists for kill(); treat it as gone.
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] != 'Z';
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string baton_bin() {
  return BATON_BIN;
}
std::string hello_bin() {
  return HELLO_BIN;
}
std::string probe_bin() {
  return PROBE_BIN;
}

}  // namespace e2e

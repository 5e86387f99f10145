// The shim test harness (harness.h): sockets, the child with the shim
// preloaded, HTTP over loopback, /proc.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace shimtest {

namespace {

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

/// sockaddr of an IP listener as a client reaches it, or of a unix one.
socklen_t client_address(const Listener& l, sockaddr_storage& storage) {
  std::memset(&storage, 0, sizeof storage);
  if (l.family == AF_UNIX) {
    auto* un = reinterpret_cast<sockaddr_un*>(&storage);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, l.path.c_str(), l.path.size() + 1);
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + l.path.size() + 1);
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<uint16_t>(l.port));
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sizeof(sockaddr_in);
}

std::vector<std::string> child_environment(const NotifySocket& notify) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (key.starts_with("LISTEN_") || key == "NOTIFY_SOCKET" || key == "LD_PRELOAD" ||
        key.starts_with("BATON_SHIM"))
      continue;
    env.push_back(entry);
  }
  env.push_back(std::string("LD_PRELOAD=") + SHIM_LIBRARY);
  env.push_back("LISTEN_FDS=1");
  env.push_back("LISTEN_FDNAMES=http");
  env.push_back("NOTIFY_SOCKET=@" + notify.name);
  env.push_back("BATON_SHIM_DRAIN_SIGNAL=15");
  // LISTEN_PID must be the child's own pid: written into this entry after fork.
  env.push_back("LISTEN_PID=" + std::string(12, '\0'));
  return env;
}

/// In the forked child: async-signal-safe calls only.
[[noreturn]] void exec_child(char** args, char** envp, char* pid_slot, int listen_fd,
                             int output_fd) {
  char digits[16];
  int n = 0;
  for (pid_t p = getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
  for (int i = 0; i < n; ++i) pid_slot[i] = digits[n - 1 - i];
  pid_slot[n] = '\0';
  if (listen_fd == 3) {
    fcntl(3, F_SETFD, 0);
  } else {
    dup2(listen_fd, 3);
  }
  dup2(output_fd, 1);
  dup2(output_fd, 2);
  execve(args[0], args, envp);
  _exit(127);
}

}  // namespace

bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

Listener::Listener(int family_, std::string unix_path)
    : family(family_), path(std::move(unix_path)) {
  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage storage{};
  socklen_t len = 0;
  if (family == AF_UNIX) {
    unlink(path.c_str());
    len = client_address(*this, storage);
  } else if (family == AF_INET6) {
    int off = 0;
    REQUIRE(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    len = sizeof *in6;
  } else {
    len = client_address(*this, storage);
  }
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&storage), len) == 0);
  REQUIRE(listen(fd, 128) == 0);
  if (family != AF_UNIX) {
    len = sizeof storage;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) == 0);
    port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&storage)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
  }
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  inode = st.st_ino;
}

Listener::~Listener() {
  close(fd);
  if (family == AF_UNIX) unlink(path.c_str());
}

std::string Listener::socket_link() const {
  return "socket:[" + std::to_string(inode) + "]";
}

bool Listener::nonblocking() const {
  return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

bool ipv6_available() {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_addr = in6addr_any;
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&in6), sizeof in6) == 0;
  close(fd);
  return ok;
}

NotifySocket::NotifySocket() {
  static int counter = 0;
  name = "baton-shim-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
}

NotifySocket::~NotifySocket() {
  close(fd);
}

std::optional<std::string> NotifySocket::next(Millis timeout) {
  if (!wait_for(fd, POLLIN, Clock::now() + timeout)) return std::nullopt;
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

Child::Child(const std::vector<std::string>& argv, const Listener& listener,
             const NotifySocket& notify) {
  std::vector<std::string> env = child_environment(notify);
  std::vector<std::string> args_copy = argv;
  std::vector<char*> envp, args;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (std::string& a : args_copy) args.push_back(a.data());
  args.push_back(nullptr);
  char* pid_slot = envp[envp.size() - 2] + std::strlen("LISTEN_PID=");
  int pipe_fds[2];
  REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) exec_child(args.data(), envp.data(), pid_slot, listener.fd, pipe_fds[1]);
  close(pipe_fds[1]);
  output = pipe_fds[0];
}

Child::~Child() {
  if (!status) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  close(output);
}

std::optional<int> Child::wait(Millis timeout) {
  if (status) return status;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    wait_for(pidfd, POLLIN, Clock::now() + timeout);
    close(pidfd);
  }
  int st = 0;
  if (waitpid(pid, &st, WNOHANG) == pid) status = st;
  return status;
}

std::string Child::output_text() {
  std::string text;
  char buf[4096];
  while (wait_for(output, POLLIN, Clock::now() + 1000ms)) {
    ssize_t n = read(output, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::string Child::fd_link(int fd) const {
  std::error_code ec;
  auto target = std::filesystem::read_symlink(
      "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
  return ec ? "" : target.string();
}

std::string loaded_message(pid_t pid) {
  return "BATON_SHIM=loaded\nSTATUS=baton-shim: loaded in pid " + std::to_string(pid) +
         ", 1 sockets inherited";
}

std::string ready_message() {
  return "READY=1\nSTATUS=baton-shim: ready, 1 sockets taken over";
}

std::string stopping_message(pid_t pid, int connections) {
  return "STOPPING=1\nSTATUS=baton-shim: draining pid " + std::to_string(pid) + ", " +
         std::to_string(connections) + " connections open";
}

int send_request(const Listener& listener, const std::string& path) {
  int fd = socket(listener.family == AF_UNIX ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage addr;
  socklen_t len = client_address(listener, addr);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: test\r\n\r\n";
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  return fd;
}

std::string read_response(int fd, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  std::string response;
  char buf[4096];
  while (wait_for(fd, POLLIN, deadline)) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

std::string http_get(const Listener& listener, const std::string& path) {
  return read_response(send_request(listener, path));
}

std::string body_of(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

namespace {

/// The /proc/net/tcp entries whose local address is 127.0.0.1:port, as
/// (state, inode, receive queue).
struct TcpEntry {
  std::string state;
  ino_t inode;
  int queue;
};

std::vector<TcpEntry> tcp_entries(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);
  char local[32];
  std::snprintf(local, sizeof local, "0100007F:%04X", port);
  std::vector<TcpEntry> found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local_address, remote, state, queues, timer, retransmits, uid, timeout;
    unsigned long inode = 0;
    fields >> slot >> local_address >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    if (local_address != local) continue;
    int queue = static_cast<int>(std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16));
    found.push_back({state, static_cast<ino_t>(inode), queue});
  }
  return found;
}

/// Reads every thread's `file` in /proc/PID/task (first word).
std::vector<std::string> per_thread(pid_t pid, const char* file) {
  std::vector<std::string> values;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / file);
    std::string first;
    in >> first;
    values.push_back(first);
  }
  return values;
}

/// The state letter in /proc/PID/stat (after the parenthesised name).
char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
}

}  // namespace

std::vector<std::pair<ino_t, int>> listeners_on(int port) {
  std::vector<std::pair<ino_t, int>> found;
  for (const TcpEntry& e : tcp_entries(port)) {
    if (e.state == "0A") found.emplace_back(e.inode, e.queue);
  }
  return found;
}

int threads_in(pid_t pid, const std::vector<long>& calls) {
  int count = 0;
  for (const std::string& call : per_thread(pid, "syscall")) {
    if (call.empty() || !std::isdigit(static_cast<unsigned char>(call[0]))) continue;
    if (std::find(calls.begin(), calls.end(), std::stol(call)) != calls.end()) ++count;
  }
  return count;
}

/// Connections the child holds: socket fds below 1000 (the shim keeps its
/// own fds from 1000 up) other than the listener.
int connections_held(const Child& child, const Listener& listener) {
  int held = 0;
  std::error_code ec;
  for (const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(child.pid) + "/fd", ec)) {
    if (std::stoi(fd.path().filename().string()) >= 1000) continue;
    auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    held += target.starts_with("socket:[") && target != listener.socket_link();
  }
  return held;
}

bool serving(const Child& child, const Listener& listener, const std::vector<long>& calls,
             int count) {
  auto deadline = Clock::now() + 10000ms;
  int held = 0, sleeping = 0;
  while (Clock::now() < deadline) {
    held = connections_held(child, listener);
    sleeping = threads_in(child.pid, calls);
    if (held >= count && sleeping >= count) return true;
    usleep(1000);
  }
  MESSAGE("connections held: ", held, "; threads in the expected calls: ", sleeping);
  return false;
}

bool no_thread_in_tcp_accept(const Child& child) {
  auto deadline = Clock::now() + 10000ms;
  while (Clock::now() < deadline) {
    // A thread woken but not yet run shows "0": it may still be inside a
    // TCP accept and take a connection, so every thread must be asleep (or
    // the child already gone: a zombie shows "0" too).
    if (process_state(child.pid) == 'Z') return true;
    auto wchans = per_thread(child.pid, "wchan");
    if (std::none_of(wchans.begin(), wchans.end(), [](const std::string& w) {
          return w == "0" || w.empty() || w == "inet_csk_accept";
        }))
      return true;
    usleep(2000);
  }
  std::string seen;
  for (const std::string& w : per_thread(child.pid, "wchan")) seen += " " + w;
  MESSAGE("threads of the child in:", seen);
  return false;
}

}  // namespace shimtest

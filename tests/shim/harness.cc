// The shim test harness (harness.h): the test's listening socket, the child
// with the shim preloaded, /proc.
#include "harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace shimtest {

using support::clean_environment;
using support::connect_stream;
using support::eventually;
using support::open_fds;
using support::process_exists;
using support::send_get;

namespace {

/// The sockaddr a listener binds: 127.0.0.1:0 for AF_INET, or its path.
socklen_t bind_address(const Listener& l, sockaddr_storage& storage) {
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

}  // namespace

Listener::Listener(int family_, std::string unix_path)
    : family(family_), path(std::move(unix_path)) {
  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage storage{};
  socklen_t len = 0;
  if (family == AF_UNIX) {
    unlink(path.c_str());
    len = bind_address(*this, storage);
  } else if (family == AF_INET6) {
    int off = 0;
    REQUIRE(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    len = sizeof *in6;
  } else {
    len = bind_address(*this, storage);
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

std::string Listener::address() const {
  return family == AF_UNIX ? path : "127.0.0.1:" + std::to_string(port);
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

Child::Child(const std::vector<std::string>& argv, const Listener& listener,
             const NotifyListener& notify)
    : process_(start(argv, listener, notify, output_)) {}

support::Child Child::start(const std::vector<std::string>& argv, const Listener& listener,
                            const NotifyListener& notify, int& output) {
  std::vector<std::string> env = clean_environment({"LD_PRELOAD=", "BATON_SHIM"});
  env.push_back(std::string("LD_PRELOAD=") + SHIM_LIBRARY);
  env.push_back("LISTEN_FDS=1");
  env.push_back("LISTEN_FDNAMES=http");
  env.push_back("NOTIFY_SOCKET=" + notify.socket_env());
  env.push_back("BATON_SHIM_DRAIN_SIGNAL=15");
  int pipe_fds[2];
  REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
  output = pipe_fds[0];
  support::Child child = support::Child::spawn({.argv = argv,
                                                .env = env,
                                                .stdout_fd = pipe_fds[1],
                                                .stderr_fd = pipe_fds[1],
                                                .listen_fd = listener.fd});
  close(pipe_fds[1]);
  return child;
}

Child::~Child() {
  process_.kill();
  close(output_);
}

std::string Child::output_text() {
  std::string text;
  char buf[4096];
  while (wait_fd(output_, POLLIN, Clock::now() + 1000ms) > 0) {
    ssize_t n = read(output_, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
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
  int fd = connect_stream(listener.address());
  REQUIRE(fd >= 0);
  REQUIRE(send_get(fd, path));
  return fd;
}

namespace {

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

}  // namespace

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
  for (int fd : open_fds(child.pid())) {
    if (fd >= 1000) continue;
    const std::string target = fd_link(child.pid(), fd);
    held += target.starts_with("socket:[") && target != listener.socket_link();
  }
  return held;
}

bool serving(const Child& child, const Listener& listener, const std::vector<long>& calls,
             int count) {
  int held = 0, sleeping = 0;
  const bool ok = eventually(
      [&] {
        held = connections_held(child, listener);
        sleeping = threads_in(child.pid(), calls);
        return held >= count && sleeping >= count;
      },
      10s, 1ms);
  if (!ok) MESSAGE("connections held: ", held, "; threads in the expected calls: ", sleeping);
  return ok;
}

bool no_thread_in_tcp_accept(const Child& child) {
  const bool ok = eventually(
      [&] {
        // A thread woken but not yet run shows "0": it may still be inside a
        // TCP accept and take a connection, so every thread must be asleep
        // (or the child already gone: a zombie shows "0" too).
        if (!process_exists(child.pid())) return true;
        auto wchans = per_thread(child.pid(), "wchan");
        return std::none_of(wchans.begin(), wchans.end(), [](const std::string& w) {
          return w == "0" || w.empty() || w == "inet_csk_accept";
        });
      },
      10s, 2ms);
  if (!ok) {
    std::string seen;
    for (const std::string& w : per_thread(child.pid(), "wchan")) seen += " " + w;
    MESSAGE("threads of the child in:", seen);
  }
  return ok;
}

}  // namespace shimtest

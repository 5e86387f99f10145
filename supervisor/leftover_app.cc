// Finding and taking over an app left by a baton that died, and draining it.
#include "leftover_app.h"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "file_util.h"
#include "listen_socket.h"
#include "proc_stat.h"
#include "socket_holders.h"

namespace baton {
namespace {

constexpr std::chrono::milliseconds kGroupPoll{50};

/// The value of `key` in the NUL-separated environment of `pid`.
std::optional<std::string> environment_value(pid_t pid, std::string_view key) {
  auto env = read_whole_file(fmt::format("/proc/{}/environ", pid), "environment");
  if (!env) return std::nullopt;
  std::string prefix = std::string(key) + "=";
  for (size_t at = 0; at < env->size();) {
    size_t end = env->find('\0', at);
    if (end == std::string::npos) end = env->size();
    std::string_view entry(env->data() + at, end - at);
    if (entry.starts_with(prefix)) return std::string(entry.substr(prefix.size()));
    at = end + 1;
  }
  return std::nullopt;
}

/// The baton that started `pid`, from the BATON_PID it gave it (or, from a
/// baton that set none, its abstract NOTIFY_SOCKET "@baton/PID/..."); -1 if
/// baton did not start it.
pid_t starting_baton(pid_t pid) {
  if (!environment_value(pid, "LISTEN_FDNAMES")) return -1;
  if (auto baton = environment_value(pid, "BATON_PID")) {
    int value = std::atoi(baton->c_str());
    return value > 0 ? static_cast<pid_t>(value) : -1;
  }
  auto notify = environment_value(pid, "NOTIFY_SOCKET");
  if (!notify || !notify->starts_with("@baton/")) return -1;
  return static_cast<pid_t>(std::atoi(notify->c_str() + 7));
}

bool is_running_baton(pid_t pid) {
  return command_name(pid).starts_with("baton");
}

/// The fd number under which `pid` holds socket `inode`; -1 if none.
int fd_number_of(pid_t pid, ino_t inode) {
  std::string dir = fmt::format("/proc/{}/fd", pid);
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return -1;
  std::string want = fmt::format("socket:[{}]", inode);
  char link[64];
  while (dirent* e = readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    ssize_t n = readlink(fmt::format("{}/{}", dir, e->d_name).c_str(), link, sizeof link);
    if (n > 0 && std::string_view(link, static_cast<size_t>(n)) == want)
      return std::atoi(e->d_name);
  }
  return -1;
}

/// Copies socket `inode` out of `holder` and checks it is what `spec` says.
Result<SharedSocket> copy_socket(const SocketSpec& spec, const SocketHolder& holder, ino_t inode) {
  int number = fd_number_of(holder.pid, inode);
  UniqueFd pidfd = open_pidfd(holder.pid);
  if (number < 0 || !pidfd.valid()) {
    return error(
        fmt::format("{}: pid {} exited while baton was taking its socket over; start "
                    "baton again",
                    spec.name, holder.pid));
  }
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), number, 0)));
  if (!fd.valid()) {
    return sys_error(fmt::format("{}: cannot take socket {} over from pid {} ({})", spec.name,
                                 spec.address(), holder.pid, holder.command));
  }
  std::string origin = fmt::format("fd {} of pid {}", number, holder.pid);
  auto sock = ListenSocket::adopt(spec, std::move(fd), origin);
  if (!sock) return sock.error();
  return std::make_shared<ListenSocket>(std::move(*sock));
}

/// Why the holders of `spec` cannot be taken over, or nothing if they can.
Status check_holder(const SocketSpec& spec, const SocketHolder& h, pid_t old_baton) {
  if (old_baton < 0) {
    return Error{fmt::format("{}: {} is held by pid {} ({}), which baton did not start: stop it, "
                             "or configure another address",
                             spec.name, spec.address(), h.pid, h.command),
                 EADDRINUSE};
  }
  if (is_running_baton(old_baton)) {
    return Error{fmt::format("{}: {} is served by pid {} ({}) for the baton running as pid {}: "
                             "stop that baton first, or configure another address",
                             spec.name, spec.address(), h.pid, h.command, old_baton),
                 EADDRINUSE};
  }
  return {};
}

}  // namespace

Result<std::optional<Leftover>> take_over_leftover(const std::vector<SocketSpec>& specs) {
  std::vector<pid_t> exclude = self_and_ancestors();
  std::optional<Leftover> found;
  std::vector<SharedSocket> sockets;
  for (const SocketSpec& spec : specs) {
    std::vector<ino_t> inodes = inodes_bound_to(spec);
    if (inodes.empty()) continue;  // free: baton binds it itself
    std::vector<SocketHolder> holders = find_socket_holders(inodes, exclude);
    if (holders.empty()) continue;  // held by baton's manager or hidden: bind reports it
    // The group leader is the old instance's main pid; workers share its group.
    auto leader = std::find_if(holders.begin(), holders.end(),
                               [](const SocketHolder& h) { return h.pid == h.pgid; });
    const SocketHolder& h = leader != holders.end() ? *leader : holders.front();
    pid_t old_baton = starting_baton(h.pid);
    if (Status s = check_holder(spec, h, old_baton); !s) return s.error();
    if (found && found->group != h.pgid) {
      return Error{fmt::format("{}: {} is held by pid {} ({}), another app than the one holding "
                               "the other sockets (group {}): stop one of them",
                               spec.name, spec.address(), h.pid, h.command, found->group),
                   EADDRINUSE};
    }
    auto sock = copy_socket(spec, h, h.inodes.front());
    if (!sock) return sock.error();
    spdlog::warn(
        "socket {}: {} is held by pid {} ({}), left serving by baton pid {}, which is gone: "
        "taking it over; that app serves until generation 1 is ready, then it is drained",
        spec.name, spec.address(), h.pid, h.command, old_baton);
    sockets.push_back(std::move(*sock));
    if (!found) {
      found.emplace();
      found->group = h.pgid;
      found->command = h.command;
      found->old_baton = old_baton;
      found->pidfd = open_pidfd(h.pid);
    }
  }
  if (found) found->sockets = std::move(sockets);
  return found;
}

LeftoverDrain::LeftoverDrain(uv_loop_t* loop, Leftover leftover) : leftover_(std::move(leftover)) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

LeftoverDrain::~LeftoverDrain() = default;

void LeftoverDrain::drain(int signal, std::chrono::milliseconds timeout,
                          std::function<void()> on_gone) {
  if (on_gone) on_gone_ = std::move(on_gone);
  if (draining_ || closed_) return;
  draining_ = true;
  timeout_ = timeout;
  drain_started_ = std::chrono::steady_clock::now();
  spdlog::info("left-over app (group {}, {}): sending signal {} (drain_timeout {}ms)",
               leftover_.group, leftover_.command, signal, timeout.count());
  ::kill(-leftover_.group, signal);
  check();
}

void LeftoverDrain::check() {
  if (closed_) return;
  if (::kill(-leftover_.group, 0) != 0 && errno == ESRCH) {
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - drain_started_);
    spdlog::info("left-over app (group {}) {} after {}ms", leftover_.group,
                 killed_ ? "was killed by SIGKILL after drain_timeout" : "has exited",
                 took.count());
    gone_ = true;
    leftover_.sockets.clear();
    if (on_gone_) on_gone_();
    return;
  }
  if (!killed_ && std::chrono::steady_clock::now() - drain_started_ >= timeout_) {
    spdlog::warn("left-over app (group {}) still running after drain_timeout; killing it",
                 leftover_.group);
    ::kill(-leftover_.group, SIGKILL);
    killed_ = true;
  }
  uv_timer_start(&timer_, on_timer, static_cast<uint64_t>(kGroupPoll.count()), 0);
}

void LeftoverDrain::on_timer(uv_timer_t* timer) noexcept {
  static_cast<LeftoverDrain*>(timer->data)->check();
}

void LeftoverDrain::close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

}  // namespace baton

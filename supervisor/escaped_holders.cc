// Finding, naming and ending escaped socket holders.
#include "escaped_holders.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "proc_stat.h"
#include "socket_holders.h"

namespace baton {
namespace {

/// After SIGKILL, how often to look whether the process is gone, and how
/// long before giving up on one stuck in the kernel.
constexpr std::chrono::milliseconds kKillPoll{50};
constexpr std::chrono::milliseconds kKillGiveUp{5000};

bool has_exited(const UniqueFd& pidfd) {
  pollfd p{pidfd.get(), POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

std::string socket_names(const std::vector<ino_t>& inodes, const EscapedHolders::Scope& scope) {
  std::vector<std::string> names;
  for (const auto& [inode, name] : scope.sockets) {
    if (std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) names.push_back(name);
  }
  return fmt::format("socket{} {}", names.size() == 1 ? "" : "s", fmt::join(names, ", "));
}

}  // namespace

EscapedHolders::EscapedHolders(uv_loop_t* loop, std::function<Scope()> scope)
    : scope_(std::move(scope)) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

EscapedHolders::~EscapedHolders() = default;

void EscapedHolders::close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void EscapedHolders::sweep(const std::string& ended, Clock::time_point deadline) {
  if (closed_) return;
  scan(ended, deadline);
  act();
}

void EscapedHolders::scan(const std::string& ended, Clock::time_point deadline) {
  Scope scope = scope_();
  std::vector<ino_t> inodes;
  for (const auto& s : scope.sockets) inodes.push_back(s.first);
  if (inodes.empty()) return;
  // baton's ancestors hold its sockets by right: its manager keeps them in
  // the fd store (systemd, or a test standing in for it), a socket
  // activator passed them in.
  unsigned long long oldest_running = ~0ULL;
  for (pid_t pid : scope.running) {
    if (auto st = read_proc_stat(pid)) oldest_running = std::min(oldest_running, st->start_time);
  }
  for (SocketHolder& h : find_socket_holders(inodes, self_and_ancestors())) {
    bool in_group =
        std::find(scope.groups.begin(), scope.groups.end(), h.pgid) != scope.groups.end();
    bool known = std::any_of(escapees_.begin(), escapees_.end(),
                             [&](const Escapee& e) { return e.pid == h.pid; });
    auto st = read_proc_stat(h.pid);
    if (in_group || known || !st || st->start_time >= oldest_running) continue;
    UniqueFd pidfd = open_pidfd(h.pid);
    if (!pidfd.valid()) continue;  // exited since the scan
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    spdlog::warn(
        "pid {} ({}) is outside every instance's process group but still holds {} after {} "
        "ended; it is killed {}",
        h.pid, h.command, socket_names(h.inodes, scope), ended,
        left.count() > 0 ? fmt::format("in {}ms unless it exits", left.count()) : "now");
    escapees_.push_back(Escapee{h.pid, h.command, std::move(pidfd), deadline});
  }
}

void EscapedHolders::act() {
  bool had_escapees = !escapees_.empty();
  auto now = Clock::now();
  bool killed_any = false;
  for (auto it = escapees_.begin(); it != escapees_.end();) {
    Escapee& e = *it;
    if (has_exited(e.pidfd)) {
      spdlog::info("pid {} ({}) has exited", e.pid, e.command);
      it = escapees_.erase(it);
      continue;
    }
    if (e.killed_at == Clock::time_point{} && now >= e.deadline) {
      spdlog::warn("pid {} ({}): drain_timeout is over; killing it (SIGKILL)", e.pid, e.command);
      syscall(SYS_pidfd_send_signal, e.pidfd.get(), SIGKILL, nullptr, 0);
      e.killed_at = now;
      killed_any = true;
    } else if (e.killed_at != Clock::time_point{} && now - e.killed_at >= kKillGiveUp) {
      spdlog::error("pid {} ({}) is still alive {}ms after SIGKILL; no longer waiting for it",
                    e.pid, e.command, kKillGiveUp.count());
      it = escapees_.erase(it);
      continue;
    }
    ++it;
  }
  // A holder may have forked, or passed the socket on, before it died.
  if (killed_any) scan("the escaped processes were killed", now);
  arm();
  if (had_escapees && escapees_.empty() && on_empty) on_empty();
}

void EscapedHolders::arm() {
  if (closed_ || escapees_.empty()) {
    if (!closed_) uv_timer_stop(&timer_);
    return;
  }
  auto now = Clock::now();
  auto next = now + kKillPoll * 20;  // escapees exit on their own too: look now and then
  for (const Escapee& e : escapees_) {
    next = std::min(next, e.killed_at != Clock::time_point{} ? now + kKillPoll : e.deadline);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
  uv_update_time(timer_.loop);
  uv_timer_start(&timer_, on_timer, static_cast<uint64_t>(std::max<int64_t>(ms, 0)), 0);
}

void EscapedHolders::on_timer(uv_timer_t* timer) noexcept {
  static_cast<EscapedHolders*>(timer->data)->act();
}

}  // namespace baton

// ManagerNotifier: baton's own sd_notify client, talking to whoever started
// it (systemd, or a test) through NOTIFY_SOCKET. It never blocks the loop:
// messages the manager cannot take yet are queued and sent when it can.
#pragma once

#include <uv.h>

#include <deque>
#include <string>

#include "unique_fd.h"

namespace baton {

class ManagerNotifier {
 public:
  /// Reads NOTIFY_SOCKET; without it (or with an unusable one) every
  /// notify() does nothing.
  explicit ManagerNotifier(uv_loop_t* loop);
  ~ManagerNotifier();
  ManagerNotifier(const ManagerNotifier&) = delete;
  ManagerNotifier& operator=(const ManagerNotifier&) = delete;

  /// Sends "KEY=VALUE\n..." as one datagram, now or as soon as the manager's
  /// queue has room.
  void notify(const std::string& message);
  /// Sends `message` with a copy of `fd` attached (FDSTORE=1).
  void notify_with_fd(const std::string& message, int fd);
  /// True when there is a manager to talk to.
  bool connected() const { return fd_.valid() && !closed_; }

  /// Stops polling and the watchdog; pending messages are dropped.
  void close();

  /// The manager's watchdog interval (WATCHDOG_USEC for this pid), or 0.
  uint64_t watchdog_usec() const { return watchdog_usec_; }

 private:
  static void on_writable(uv_poll_t* handle, int status, int events) noexcept;
  void flush();
  void start_watchdog(uv_loop_t* loop);

  UniqueFd fd_;
  uv_poll_t poll_{};
  bool polling_ = false;
  bool closed_ = false;
  struct Pending {
    std::string message;
    /// A copy of the fd to attach, if any.
    UniqueFd fd;
  };
  /// Messages not yet sent, oldest first; bounded by kMaxPending.
  std::deque<Pending> pending_;
  /// Sends WATCHDOG=1 at half the manager's interval while baton's loop runs:
  /// a stuck loop stops the pings and the manager restarts baton.
  uv_timer_t watchdog_{};
  bool watchdog_running_ = false;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace baton

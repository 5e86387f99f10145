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

  /// Stops polling; pending messages are dropped.
  void close();

 private:
  static void on_writable(uv_poll_t* handle, int status, int events) noexcept;
  void flush();

  UniqueFd fd_;
  uv_poll_t poll_{};
  bool polling_ = false;
  bool closed_ = false;
  /// Messages not yet sent, oldest first; bounded by kMaxPending.
  std::deque<std::string> pending_;
};

}  // namespace baton

// NotifyListener: the manager's end of sd_notify, to see what baton or the
// shim reports.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/wait.h"

namespace support {

/// A unix datagram socket (an abstract name) that receives sd_notify messages.
class NotifyListener {
 public:
  /// Binds the socket; throws std::runtime_error if it cannot.
  NotifyListener();
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  /// The NOTIFY_SOCKET value ("@name").
  const std::string& socket_env() const { return env_; }
  /// The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(Millis timeout = 15s);
  /// Reads datagrams until one satisfies `match`; false after `timeout`.
  bool wait_for(const std::function<bool(const std::string&)>& match, Millis timeout);
  /// Every datagram received so far, in order.
  const std::vector<std::string>& history() const { return history_; }
  /// The fd that arrived with the datagram `text` (FDSTORE=1), or -1. The
  /// listener keeps owning it.
  int fd_of(const std::string& text) const;
  /// Closes every fd received so far, as a manager that drops its fd store.
  void drop_fds();

 private:
  int fd_ = -1;
  std::string env_;
  std::vector<std::string> history_;
  /// Fds received, with the index of their datagram in history_.
  std::vector<std::pair<size_t, int>> fds_;
};

}  // namespace support

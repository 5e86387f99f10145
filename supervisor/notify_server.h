// NotifyServer: the unix datagram socket apps send sd_notify messages to
// (their NOTIFY_SOCKET). Each datagram is attributed to its sender's pid by
// SCM_CREDENTIALS and handed to the supervisor.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "log_throttle.h"
#include "notify_message.h"
#include "result.h"
#include "unique_fd.h"

namespace baton {

/// Receives sd_notify datagrams on a unix socket. libuv's udp
/// handle drops ancillary data, so this polls the raw fd and calls recvmsg
/// itself. Every fd that arrives with a datagram is closed (systemd-notify
/// sends BARRIER=1 with an fd and waits until it is closed).
class NotifyServer {
 public:
  using Handler = std::function<void(pid_t sender, const NotifyMessage&)>;

  /// Binds `address` and starts polling it on `loop`. "@name" is an
  /// abstract name; anything else a path: a stale socket file there is
  /// replaced, the new one is made writable by everyone (as systemd's
  /// /run/systemd/notify: only instances' pids count, by their kernel
  /// credentials) and removed by close().
  static Result<std::unique_ptr<NotifyServer>> open(uv_loop_t* loop, std::string address,
                                                    Handler handler);
  ~NotifyServer();

  /// The value for the app's NOTIFY_SOCKET: the address given to open().
  const std::string& socket_env() const { return socket_env_; }

  /// Stops polling. The object must outlive the loop iteration that closes it.
  void close();

 private:
  NotifyServer() = default;
  static void on_poll(uv_poll_t* handle, int status, int events) noexcept;
  void receive_all() noexcept;

  UniqueFd fd_;
  uv_poll_t poll_{};
  bool polling_ = false;
  std::string socket_env_;
  /// The socket file to remove on close; empty for an abstract name.
  std::string path_;
  Handler handler_;
  /// Datagrams dropped before they reach the handler (too long, no sender).
  LogThrottle dropped_;
};

}  // namespace baton

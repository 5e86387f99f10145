// ControlServer: the unix stream socket that `baton status`, `baton stop`
// and `baton reload` talk to. Requests and replies are JSON, one object per
// line: a request, then any number of progress events, then one final reply
// carrying "ok". Any local client may be slow, idle or hostile: the server
// bounds how long it waits for a request and how many connections it holds.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "result.h"
#include "unique_fd.h"

namespace baton {

/// The server side of one client request. It stays valid after the client
/// disconnects; sending to a gone client does nothing.
class ControlReply {
 public:
  virtual ~ControlReply() = default;
  /// Sends a progress event ({"event": ...}); the request stays open.
  virtual void event(const nlohmann::json& event) = 0;
  /// Sends the final reply (it must contain "ok") and closes the connection.
  virtual void finish(const nlohmann::json& reply) = 0;
  /// True until the final reply is sent or the client has gone.
  virtual bool open() const { return true; }
  /// Bytes sent but not yet taken by the client (waiting in baton).
  virtual size_t queued_bytes() const { return 0; }
};

class ControlConnection;

class ControlServer {
 public:
  using Handler =
      std::function<void(const nlohmann::json& request, std::shared_ptr<ControlReply> reply)>;

  /// Listens on `path` with owner-only permissions, creating its directory
  /// (0700) if missing. Refuses a directory that is not trusted (see
  /// check_control_directory), and a `path` another live process answers
  /// on; a stale socket file is replaced.
  static Result<std::unique_ptr<ControlServer>> open(uv_loop_t* loop, const std::string& path,
                                                     Handler handler);
  ~ControlServer();

  /// Stops accepting and removes the socket file. Open requests can still
  /// be answered.
  void close();
  /// Closes every client connection still open (after final replies are
  /// queued), so none keeps the loop alive.
  void close_connections();

 private:
  /// One kind of log line, rate-limited: the first event after a quiet
  /// period is logged at once; later ones within the interval are counted
  /// and logged as one line when it ends (from the server's timer).
  struct HeldLogLine {
    /// The line is prefix + "N connection(s)" + suffix.
    std::string prefix, suffix;
    bool warning = false;
    /// Loop time (ms) from which the next line may be written at once.
    uint64_t quiet_at = 0;
    /// Events not logged yet.
    uint64_t held = 0;
  };

  ControlServer() = default;
  Status listen_on(const std::string& path);
  static void on_readable(uv_poll_t* poll, int status, int events) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  void accept_pending();
  void admit(UniqueFd fd);
  void refuse_without_fds(int err);
  size_t open_connections() const;
  void close_idle_connections();
  void note(HeldLogLine& throttle, uint64_t count);
  void flush(HeldLogLine& throttle, bool force);
  void schedule();

  uv_loop_t* loop_ = nullptr;
  std::string path_;
  Handler handler_;
  /// The listening socket; invalid once closed.
  UniqueFd listen_fd_;
  /// An fd held open on /dev/null, released for a moment when accept fails
  /// with EMFILE/ENFILE so the waiting clients can be told why.
  UniqueFd reserve_fd_;
  /// Watches listen_fd_; closed (with timer_) by close().
  uv_poll_t poll_{};
  /// Fires at the next request deadline, log flush or accept retry.
  uv_timer_t timer_{};
  bool listening_ = false;
  /// Loop time (ms) until which accepting is paused (out of fds, nothing
  /// reserved to refuse with), or 0.
  uint64_t accept_paused_until_ = 0;
  /// How many connections may be open at once (see connection_cap()).
  size_t max_connections_ = 0;
  /// Accepted connections, oldest first; expired entries are dropped lazily.
  std::vector<std::weak_ptr<ControlConnection>> connections_;
  HeldLogLine timed_out_, over_cap_, out_of_fds_;
};

}  // namespace baton

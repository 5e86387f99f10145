// Taking over from a baton that died. When baton is killed (kill -9, the
// OOM killer), its app keeps serving on the listening sockets, and a new
// baton cannot bind them (EADDRINUSE). A restarted baton takes them back
// instead: it finds the process that holds the configured addresses, checks
// that a baton started it (LISTEN_FDNAMES and a baton NOTIFY_SOCKET in its
// environment) and that that baton is gone, and copies each socket out of
// it with pidfd_getfd(2). Its own generation 1 then starts on the very same
// sockets, and the left-over app is drained once generation 1 is ready: no
// socket closes at any point, so no connection is refused.
//
// Traps: the app's stdout/stderr were pipes to the dead baton, so its
// writes there fail (EPIPE; SIGPIPE for an app that does not ignore it).
// pidfd_getfd needs ptrace rights over the app (same user, or root).
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "result.h"
#include "socket_set.h"
#include "socket_spec.h"
#include "unique_fd.h"

namespace baton {

/// An app a gone baton left serving, and copies of its sockets.
struct Leftover {
  /// Its process group (the old instance's main pid leads it).
  pid_t group = -1;
  std::string command;
  /// Pins the group leader: its pid cannot be reused while this is open.
  UniqueFd pidfd;
  /// The pid of the baton that started it.
  pid_t old_baton = -1;
  std::vector<SharedSocket> sockets;
};

/// Looks for a left-over app holding the addresses of `specs`. Nothing
/// holds them (or only baton's ancestors do): nullopt. A holder that baton
/// cannot take over (not started by a baton, its baton still running, no
/// permission): an error that names it and says what to do.
Result<std::optional<Leftover>> take_over_leftover(const std::vector<SocketSpec>& specs);

/// Drains a left-over app like a replaced generation: the drain signal to
/// its group, SIGKILL once drain_timeout has passed, done when the group is
/// gone.
class LeftoverDrain {
 public:
  LeftoverDrain(uv_loop_t* loop, Leftover leftover);
  ~LeftoverDrain();
  LeftoverDrain(const LeftoverDrain&) = delete;
  LeftoverDrain& operator=(const LeftoverDrain&) = delete;

  pid_t group() const { return leftover_.group; }
  /// Starts draining (once); `on_gone` runs when the whole group is gone.
  void drain(int signal, std::chrono::milliseconds timeout, std::function<void()> on_gone);
  bool gone() const { return gone_; }
  /// Closes the timer (after the app is gone, or when baton exits anyway).
  void close();

 private:
  static void on_timer(uv_timer_t* timer) noexcept;
  void check();

  Leftover leftover_;
  uv_timer_t timer_{};
  bool draining_ = false, gone_ = false, killed_ = false, closed_ = false;
  std::chrono::steady_clock::time_point drain_started_{};
  std::chrono::milliseconds timeout_{0};
  std::function<void()> on_gone_;
};

}  // namespace baton

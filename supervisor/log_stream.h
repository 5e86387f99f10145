// Log followers on the control socket: `baton logs -f` and `baton reload
// --logs` get each new line of log_ring() as an event while their
// connection is open. A client that stops reading never slows baton: once
// more than a bounded amount of output waits in its connection's buffer,
// its lines are dropped and counted, and it is told how many ({"event":
// "dropped", "lines": N}) before the next line it gets.
#pragma once

#include <cstdint>
#include <memory>

#include "control_server.h"

namespace baton {

/// Which lines a follower gets.
struct LogFilter {
  /// Only this generation's lines; 0: any.
  int generation = 0;
  /// Only lines of this generation or a later one; 0: any.
  int from_generation = 0;
  /// Only the app's output (not baton's own lines).
  bool app_only = false;
};

/// Sends every line logged from now on that passes `filter` to `reply`,
/// until its connection closes or stop_log_followers() is called.
void follow_logs(std::shared_ptr<ControlReply> reply, LogFilter filter);

/// Finishes every follower's request ({"ok": true, "event": "stopped"}):
/// baton is stopping.
void stop_log_followers();

/// Lines dropped for followers that were not keeping up, since baton started.
uint64_t log_lines_dropped_for_followers();

/// What may wait in a follower's connection (beyond what it had queued when
/// it started following) before its lines are dropped.
inline constexpr size_t kFollowerBacklogBytes = 1 << 20;

}  // namespace baton

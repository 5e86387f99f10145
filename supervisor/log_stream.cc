// Following log_ring() over the control socket.
#include "log_stream.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "log_ring.h"

namespace baton {
namespace {

class LogFollower {
 public:
  LogFollower(std::shared_ptr<ControlReply> reply, LogFilter filter)
      : reply_(std::move(reply)),
        filter_(filter),
        limit_(reply_->queued_bytes() + kFollowerBacklogBytes) {}

  /// False once the client is gone: the follower is then removed.
  bool take(const LogLine& line) {
    if (!reply_->open()) return false;
    if (!passes(line)) return true;
    if (reply_->queued_bytes() > limit_) {
      ++dropped_;
      ++dropped_total;
      return true;
    }
    if (dropped_ > 0) {
      reply_->event({{"event", "dropped"}, {"lines", dropped_}});
      dropped_ = 0;
    }
    reply_->event(log_event(line));
    return true;
  }

  void stop() { reply_->finish({{"ok", true}, {"event", "stopped"}}); }

  static inline uint64_t dropped_total = 0;

 private:
  bool passes(const LogLine& line) const {
    if (filter_.app_only && line.source == "baton") return false;
    if (filter_.generation != 0 && line.generation != filter_.generation) return false;
    return filter_.from_generation == 0 || line.generation >= filter_.from_generation;
  }

  std::shared_ptr<ControlReply> reply_;
  LogFilter filter_;
  /// Queued bytes above which lines are dropped.
  size_t limit_;
  /// Lines dropped since the last one sent.
  uint64_t dropped_ = 0;
};

/// The followers, by their id in log_ring().
std::vector<std::pair<uint64_t, std::shared_ptr<LogFollower>>>& followers() {
  static std::vector<std::pair<uint64_t, std::shared_ptr<LogFollower>>> all;
  return all;
}

}  // namespace

void follow_logs(std::shared_ptr<ControlReply> reply, LogFilter filter) {
  auto follower = std::make_shared<LogFollower>(std::move(reply), filter);
  auto id = std::make_shared<uint64_t>(0);
  *id = log_ring().follow([follower, id](const LogLine& line) {
    if (follower->take(line)) return;
    log_ring().unfollow(*id);
    std::erase_if(followers(), [&](const auto& f) { return f.first == *id; });
  });
  followers().emplace_back(*id, follower);
}

void stop_log_followers() {
  for (auto& [id, follower] : std::exchange(followers(), {})) {
    log_ring().unfollow(id);
    follower->stop();
  }
}

uint64_t log_lines_dropped_for_followers() {
  return LogFollower::dropped_total;
}

}  // namespace baton

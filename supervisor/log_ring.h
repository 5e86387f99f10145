// LogRing: the recent log lines `baton logs` shows: the app's output, with
// the generation and pid that wrote it, and baton's own lines. It holds at
// most a fixed number of lines and bytes (the oldest go first), and hands
// every new line to its followers as it is logged. A follower decides for
// itself what to do with a line it cannot send yet: the ring never waits.
// Traps: followers are called from inside spdlog's sink, so a follower must
// not log (the sink's lock is held), nor add a follower; it may unfollow,
// itself included, and its captures live until it returns. Everything runs
// on baton's loop thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <nlohmann/json_fwd.hpp>

namespace baton {

/// One log line.
struct LogLine {
  /// 1, 2, ...: the order lines were logged in; never reused.
  uint64_t seq = 0;
  std::chrono::system_clock::time_point time;
  /// Who wrote it: "stdout" or "stderr" of an app process, or "baton".
  std::string source;
  /// "info", "warning", "error", ... (baton's lines; "info" for the app's).
  std::string level;
  /// The generation it is about, 0 when none: the app's lines, and baton's
  /// lines that start with "[gen N pid P]" or "generation N".
  int generation = 0;
  /// The pid it is about, 0 when none.
  pid_t pid = 0;
  std::string text;
};

/// The line as a control event: {"event": "log", "seq", "time" (ms since
/// the epoch), "source", "level", "generation", "pid", "text"}.
nlohmann::json log_event(const LogLine& line);

/// The generation and pid a baton line names at its start ("[gen 2 pid 9]
/// ...", "generation 2: ..."); {0, 0} when it names none.
std::pair<int, pid_t> line_subject(std::string_view text);

class LogRing {
 public:
  using Follower = std::function<void(const LogLine&)>;

  LogRing(size_t max_lines, size_t max_bytes);

  /// Keeps the line (numbering it) and hands it to every follower.
  void append(LogLine line);
  /// Kept lines with `generation` (0: any), the last `count` of them
  /// (negative: all), oldest first.
  std::vector<LogLine> last(int count, int generation) const;

  /// Calls `follower` with every line appended from now on, until the
  /// returned id is passed to unfollow().
  uint64_t follow(Follower follower);
  void unfollow(uint64_t id);

  /// Lines dropped from the ring to stay within its bounds, so far.
  uint64_t evicted() const { return evicted_; }
  size_t size() const { return lines_.size(); }

 private:
  size_t max_lines_, max_bytes_;
  std::deque<LogLine> lines_;
  /// Sum of lines_' text sizes.
  size_t bytes_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t evicted_ = 0;
  uint64_t next_follower_ = 1;
  /// True while append() calls the followers.
  bool calling_ = false;
  std::vector<std::pair<uint64_t, Follower>> followers_;
};

/// The ring `baton run` keeps (10,000 lines, 2 MiB of text).
LogRing& log_ring();

/// The spdlog sink that feeds log_ring(): the source is the logger's name
/// ("baton", or "stdout"/"stderr" for app_logger()'s lines).
class RingSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
};

/// The logger the app's output lines go through, by stream ("stdout",
/// "stderr"): the default logger's sinks under another name. Before
/// setup_logging() it is the default logger.
spdlog::logger& app_logger(bool is_stderr);
/// Makes app_logger() log through `sinks` with `pattern` (setup_logging).
void set_app_loggers(std::shared_ptr<spdlog::logger> out, std::shared_ptr<spdlog::logger> err);

}  // namespace baton

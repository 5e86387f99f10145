// QueuedStderrSink: where baton's log lines (its own and the app's output)
// go. They are queued and written to stderr by one writer thread, so a slow
// reader of baton's stderr (a stopped terminal, a full pipe nobody drains)
// never stalls the event loop. The queue is bounded: when it is full, new
// lines are dropped and counted, and once the writer catches up it says
// how many were lost ("baton: 1234 log lines dropped: stderr was not
// keeping up"). Traps: the writer thread must never touch the sink after it
// is gone (it shares only `State`), and a final drain is bounded, because
// the reader may never come back.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include <spdlog/sinks/base_sink.h>

namespace baton {

class QueuedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  /// Writes to `fd` (not owned); queues at most `max_bytes` of text.
  explicit QueuedStderrSink(int fd = 2, size_t max_bytes = 1 << 20);
  ~QueuedStderrSink() override;

  /// Waits up to `timeout` for every queued line to be written, then stops
  /// the writer (left blocked in write() if the reader never returns).
  /// Lines logged afterwards are dropped.
  void shutdown(std::chrono::milliseconds timeout);

  /// Lines dropped so far because the queue was full.
  uint64_t dropped() const;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  struct State;
  std::shared_ptr<State> state_;
  /// Colour the level name (the pattern's %^...%$) when fd is a terminal.
  bool colour_ = false;
};

}  // namespace baton

// The bounded log queue and its writer thread.
#include "log_queue.h"

#include <poll.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <string>
#include <thread>

#include <fmt/format.h>

namespace baton {

/// Everything the writer thread touches; shared so that a writer left
/// blocked at shutdown keeps it alive.
struct QueuedStderrSink::State {
  int fd = 2;
  size_t max_bytes = 0;
  std::mutex mu;
  std::condition_variable wake, idle;
  std::string queued;
  uint64_t dropped_total = 0;
  /// Drops not yet reported in the output.
  uint64_t dropped_unreported = 0;
  bool writing = false;
  bool stopping = false;
  bool stopped = false;

  void write_all(std::string_view text) const {
    while (!text.empty()) {
      ssize_t n = ::write(fd, text.data(), text.size());
      if (n > 0) {
        text.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
      } else if (!(n < 0 && errno == EINTR)) {
        return;  // stderr is gone (EPIPE, EBADF): nothing more can be said
      }
    }
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      // Drops are reported even when nothing new was queued after them.
      wake.wait(lock, [&] { return stopping || !queued.empty() || dropped_unreported; });
      if (queued.empty() && !dropped_unreported) break;  // stopping, and all written
      std::string batch = std::move(queued);
      queued.clear();
      uint64_t lost = std::exchange(dropped_unreported, 0);
      writing = true;
      lock.unlock();
      if (lost) {
        write_all(fmt::format("baton: {} log line{} dropped: stderr was not keeping up\n", lost,
                              lost == 1 ? "" : "s"));
      }
      write_all(batch);
      lock.lock();
      writing = false;
      idle.notify_all();
    }
    stopped = true;
    idle.notify_all();
  }
};

QueuedStderrSink::QueuedStderrSink(int fd, size_t max_bytes) : state_(std::make_shared<State>()) {
  state_->fd = fd;
  state_->max_bytes = max_bytes;
  colour_ = isatty(fd) == 1;
  std::thread([state = state_] { state->run(); }).detach();
}

QueuedStderrSink::~QueuedStderrSink() {
  shutdown(std::chrono::seconds(2));
}

void QueuedStderrSink::shutdown(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  state_->stopping = true;
  state_->wake.notify_all();
  state_->idle.wait_for(lock, timeout, [&] { return state_->stopped; });
}

uint64_t QueuedStderrSink::dropped() const {
  std::lock_guard lock(state_->mu);
  return state_->dropped_total;
}

void QueuedStderrSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  std::string_view text(formatted.data(), formatted.size());
  std::string line;
  if (colour_ && msg.color_range_end > msg.color_range_start) {
    static constexpr const char* kColours[] = {
        "\033[37m",        "\033[36m",        "\033[32m", "\033[33m\033[1m",
        "\033[31m\033[1m", "\033[1m\033[41m", ""};
    line =
        fmt::format("{}{}{}\033[m{}", text.substr(0, msg.color_range_start),
                    kColours[static_cast<int>(msg.level)],
                    text.substr(msg.color_range_start, msg.color_range_end - msg.color_range_start),
                    text.substr(msg.color_range_end));
  } else {
    line = text;
  }
  std::lock_guard lock(state_->mu);
  if (state_->stopping || state_->queued.size() + line.size() > state_->max_bytes) {
    ++state_->dropped_total;
    ++state_->dropped_unreported;
    return;
  }
  state_->queued += line;
  state_->wake.notify_one();
}

}  // namespace baton

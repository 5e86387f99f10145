// The ring of recent log lines and the sink that fills it.
#include "log_ring.h"

#include <charconv>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace baton {
namespace {

/// Reads a decimal number at the start of `text` and removes it.
std::optional<long> take_number(std::string_view& text) {
  long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return n;
}

std::shared_ptr<spdlog::logger> app_out, app_err;

}  // namespace

std::pair<int, pid_t> line_subject(std::string_view text) {
  if (text.starts_with("[gen ")) {
    text.remove_prefix(5);
    auto gen = take_number(text);
    if (!gen || !text.starts_with(" pid ")) return {0, 0};
    text.remove_prefix(5);
    auto pid = take_number(text);
    if (!pid || !text.starts_with("]")) return {0, 0};
    return {static_cast<int>(*gen), static_cast<pid_t>(*pid)};
  }
  if (text.starts_with("generation ")) {
    text.remove_prefix(11);
    auto gen = take_number(text);
    if (gen && (text.empty() || text[0] == ':' || text[0] == ' ' || text[0] == ',')) {
      return {static_cast<int>(*gen), 0};
    }
  }
  return {0, 0};
}

nlohmann::json log_event(const LogLine& line) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(line.time.time_since_epoch());
  return {{"event", "log"},        {"seq", line.seq},     {"time", ms.count()},
          {"source", line.source}, {"level", line.level}, {"generation", line.generation},
          {"pid", line.pid},       {"text", line.text}};
}

LogRing::LogRing(size_t max_lines, size_t max_bytes)
    : max_lines_(max_lines), max_bytes_(max_bytes) {}

void LogRing::append(LogLine line) {
  line.seq = next_seq_++;
  bytes_ += line.text.size();
  lines_.push_back(std::move(line));
  // A follower may unfollow (itself or another) or add one while being
  // called: an entry unfollowed meanwhile keeps its function (which may be
  // the one running) with id 0 until every follower has been called, and
  // one added meanwhile gets its first line next time.
  calling_ = true;
  for (size_t i = 0, n = followers_.size(); i < n; ++i) {
    if (followers_[i].first != 0) followers_[i].second(lines_.back());
  }
  calling_ = false;
  std::erase_if(followers_, [](const auto& f) { return f.first == 0; });
  while (lines_.size() > max_lines_ || (bytes_ > max_bytes_ && lines_.size() > 1)) {
    bytes_ -= lines_.front().text.size();
    lines_.pop_front();
    ++evicted_;
  }
}

std::vector<LogLine> LogRing::last(int count, int generation) const {
  std::vector<LogLine> out;
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
    if (count >= 0 && out.size() >= static_cast<size_t>(count)) break;
    if (generation == 0 || it->generation == generation) out.push_back(*it);
  }
  return {out.rbegin(), out.rend()};
}

uint64_t LogRing::follow(Follower follower) {
  uint64_t id = next_follower_++;
  followers_.emplace_back(id, std::move(follower));
  return id;
}

void LogRing::unfollow(uint64_t id) {
  for (auto& follower : followers_) {
    if (follower.first == id) follower.first = 0;
  }
  if (!calling_) std::erase_if(followers_, [](const auto& f) { return f.first == 0; });
}

LogRing& log_ring() {
  static LogRing ring(10'000, 2 << 20);
  return ring;
}

void RingSink::sink_it_(const spdlog::details::log_msg& msg) {
  LogLine line;
  line.time = std::chrono::time_point_cast<std::chrono::system_clock::duration>(msg.time);
  line.source.assign(msg.logger_name.begin(), msg.logger_name.end());
  auto level = spdlog::level::to_string_view(msg.level);
  line.level.assign(level.begin(), level.end());
  if (line.level == "warn") line.level = "warning";
  line.text.assign(msg.payload.begin(), msg.payload.end());
  std::tie(line.generation, line.pid) = line_subject(line.text);
  if (line.source != "baton" && line.generation != 0) {
    // The app's own line: its "[gen N pid P] " prefix is in the fields.
    line.text.erase(0, line.text.find("] ") + 2);
  }
  log_ring().append(std::move(line));
}

spdlog::logger& app_logger(bool is_stderr) {
  spdlog::logger* logger = is_stderr ? app_err.get() : app_out.get();
  return logger ? *logger : *spdlog::default_logger_raw();
}

void set_app_loggers(std::shared_ptr<spdlog::logger> out, std::shared_ptr<spdlog::logger> err) {
  app_out = std::move(out);
  app_err = std::move(err);
}

}  // namespace baton

// Decoding of sd_notify datagrams.
#include "notify_message.h"

#include <charconv>

#include "shim/protocol.h"

namespace baton {
namespace {

template <class T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void apply_line(std::string_view key, std::string_view value, NotifyMessage& msg) {
  if (key == "READY")
    msg.ready = value == "1";
  else if (key == "RELOADING")
    msg.reloading = value == "1";
  else if (key == "STOPPING")
    msg.stopping = value == "1";
  else if (key == "WATCHDOG")
    msg.watchdog = value == "1";
  else if (key == "FDSTORE")
    msg.fdstore = value == "1";
  else if (key == "BARRIER")
    msg.barrier = value == "1";
  else if (key == "STATUS")
    msg.status = std::string(value);
  else if (key == BATON_SHIM_NOTIFY)
    msg.baton_shim = std::string(value);
  else if (key == "MAINPID") {
    if (auto pid = parse_number<pid_t>(value); pid && *pid > 0) msg.main_pid = *pid;
  } else if (key == "ERRNO") {
    if (auto e = parse_number<int>(value); e && *e >= 0) msg.errno_value = *e;
  } else if (key == "EXTEND_TIMEOUT_USEC") {
    msg.extend_timeout_usec = parse_number<uint64_t>(value);
  }
}

}  // namespace

NotifyMessage parse_notify_message(std::string_view text) {
  NotifyMessage msg;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    apply_line(line.substr(0, eq), line.substr(eq + 1), msg);
  }
  return msg;
}

}  // namespace baton

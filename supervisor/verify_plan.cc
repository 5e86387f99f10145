// Checking `baton verify`'s flags and choosing what it loads (verify_plan.h).
#include "verify_plan.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <variant>

#include <fmt/format.h>

#include "endpoint.h"

namespace baton {
namespace {

/// A whole number in min..max from `text`; a usage error naming `option` if not.
Result<int> verify_number(std::string_view option, const std::string& text, int min, int max) {
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max) {
    return error(
        fmt::format("{} must be a whole number {}..{}, not \"{}\"", option, min, max, text));
  }
  return n;
}

Status check_path(const std::string& path) {
  const bool bad_char = std::any_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == '\x7f';
  });
  if (path.starts_with('/') && !bad_char) return {};
  return error(fmt::format(
      "--path must start with '/' and contain no spaces or control characters, not \"{}\"", path));
}

/// Applies the numbers (reloads, rate or connections) to `plan`.
Status plan_numbers(const VerifyFlags& flags, VerifyPlan& plan) {
  if (!flags.reloads.empty()) {
    auto n = verify_number("--reloads", flags.reloads, 0, 1000);
    if (!n) return n.error();
    plan.reloads = *n;
  }
  if (!flags.rate.empty()) {
    auto n = verify_number("--rate", flags.rate, 1, 1000000);
    if (!n) return n.error();
    plan.rate = *n;
    plan.connections = rate_clients(*n);
  }
  if (!flags.connections.empty()) {
    auto n = verify_number("--connections", flags.connections, 1, 4096);
    if (!n) return n.error();
    plan.connections = *n;
  }
  return {};
}

/// The loopback address that reaches a socket bound to `bound`.
std::string loopback_for(const std::string& bound) {
  if (bound.starts_with("0.0.0.0:")) return "127.0.0.1:" + bound.substr(8);
  if (bound.starts_with("[::]:")) return "[::1]:" + bound.substr(5);
  return bound;
}

/// The socket named `name` ("": the first tcp or unix one), or null.
const nlohmann::json* find_socket(const nlohmann::json& sockets, const std::string& name) {
  for (const auto& s : sockets) {
    const std::string kind = s.value("kind", "");
    if (name.empty() ? kind == "tcp" || kind == "unix" : s.value("name", "") == name) return &s;
  }
  return nullptr;
}

}  // namespace

int rate_clients(int rate) {
  return std::clamp(rate / 50, 8, 256);
}

Result<VerifyPlan> plan_verify(const VerifyFlags& flags) {
  VerifyPlan plan;
  if (Status s = plan_numbers(flags, plan); !s) return s.error();
  if (!flags.duration.empty()) {
    auto d = parse_duration(flags.duration);
    if (!d) return error(fmt::format("--duration: {}", d.error().message));
    if (d->count() <= 0 || *d > Millis(24 * 3600 * 1000)) {
      return error(
          fmt::format("--duration must be above 0 and at most 24h, not {}", flags.duration));
    }
    plan.duration = *d;
  }
  if (!flags.path.empty()) plan.path = flags.path;
  if (Status s = check_path(plan.path); !s) return s.error();
  if (!flags.socket.empty() && !flags.address.empty()) {
    return error("give either --socket or --address, not both");
  }
  plan.keepalive = flags.keepalive;
  plan.socket = flags.socket;
  plan.address = flags.address;
  return plan;
}

Result<std::string> load_address(const nlohmann::json& sockets, const VerifyPlan& plan) {
  std::string address = plan.address;
  std::string what = "--address";
  if (address.empty()) {
    const nlohmann::json* s = find_socket(sockets, plan.socket);
    if (!s && plan.socket.empty()) return error("the service has no tcp or unix socket to load");
    if (!s) return error(fmt::format("the service has no socket named \"{}\"", plan.socket));
    what = "socket " + s->value("name", "");
    if (s->value("kind", "") == "udp") {
      return error(fmt::format("{} is udp; verify sends HTTP over tcp or unix", what));
    }
    address = loopback_for(s->value("address", ""));
  }
  auto endpoint = load::parse_endpoint(address);
  if (const auto* why = std::get_if<std::string>(&endpoint)) {
    return error(fmt::format(
        "{}: {}; verify sends real load, so it sends it only to this host's loopback, never to "
        "another machine: run it on the service's host with the service bound to loopback or a "
        "wildcard address, or give --address with a loopback address that reaches the service "
        "(127.0.0.1:PORT, [::1]:PORT, a unix socket path)",
        what, *why));
  }
  return address;
}

std::vector<Millis> reload_times(Millis duration, int reloads) {
  std::vector<Millis> times;
  for (int i = 1; i <= reloads; ++i) times.push_back(duration * i / (reloads + 1));
  return times;
}

}  // namespace baton

// Decoding control requests and encoding replies without exceptions.
#include "control_request.h"

#include <algorithm>
#include <climits>
#include <initializer_list>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config.h"

namespace baton {
namespace {

constexpr std::string_view kCommands[] = {"status", "reload", "promote", "rollback",
                                          "stop",   "logs",   "metrics"};
constexpr std::string_view kKeys[] = {"command", "wait",       "canary", "logs",
                                      "follow",  "generation", "lines"};

/// The JSON type name for messages ("a number", "null").
std::string type_of(const nlohmann::json& v) {
  std::string name = v.type_name();
  return name == "null" ? "null" : (name == "array" || name == "object" ? "an " : "a ") + name;
}

/// Reads an optional boolean key that only `commands` take.
Status read_bool(const nlohmann::json& request, const char* key, const std::string& command,
                 std::initializer_list<std::string_view> commands, bool& out) {
  auto it = request.find(key);
  if (it == request.end()) return {};
  if (std::find(commands.begin(), commands.end(), command) == commands.end()) {
    return error(fmt::format("\"{}\" is for the {} command only", key, *commands.begin()));
  }
  if (!it->is_boolean()) {
    return error(fmt::format("\"{}\" must be true or false, not {}", key, type_of(*it)));
  }
  out = it->get<bool>();
  return {};
}

/// Reads an optional `logs` number key, at least `min`.
Status read_count(const nlohmann::json& request, const char* key, const std::string& command,
                  int64_t min, std::optional<int>& out) {
  auto it = request.find(key);
  if (it == request.end()) return {};
  if (command != "logs") return error(fmt::format("\"{}\" is for the logs command only", key));
  if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > INT32_MAX) {
    return error(fmt::format("\"{}\" must be a whole number from {}, not {}", key, min,
                             it->is_number() ? it->dump() : type_of(*it)));
  }
  out = static_cast<int>(it->get<int64_t>());
  return {};
}

}  // namespace

Result<ControlRequest> parse_control_request(const nlohmann::json& request) {
  if (!request.is_object()) {
    return error(fmt::format("the request must be a JSON object, not {}", type_of(request)));
  }
  for (const auto& [key, value] : request.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      return error(fmt::format("unknown key \"{}\" in the request", key));
    }
  }
  auto command = request.find("command");
  if (command == request.end()) return error("the request has no \"command\"");
  if (!command->is_string()) {
    return error(fmt::format("\"command\" must be a string, not {}", type_of(*command)));
  }
  ControlRequest out;
  out.command = command->get<std::string>();
  if (std::find(std::begin(kCommands), std::end(kCommands), out.command) == std::end(kCommands)) {
    return error(fmt::format(
        "unknown command \"{}\" (known: status, reload, promote, rollback, stop, logs, metrics)",
        out.command));
  }
  if (auto wait = request.find("wait"); wait != request.end()) {
    if (!wait->is_boolean()) {
      return error(fmt::format("\"wait\" must be true or false, not {}", type_of(*wait)));
    }
    out.wait = wait->get<bool>();
  }
  if (Status s = read_bool(request, "logs", out.command, {"reload"}, out.logs); !s)
    return s.error();
  if (Status s = read_bool(request, "follow", out.command, {"logs"}, out.follow); !s) {
    return s.error();
  }
  if (Status s = read_count(request, "lines", out.command, 0, out.lines); !s) return s.error();
  if (Status s = read_count(request, "generation", out.command, 1, out.generation); !s) {
    return s.error();
  }
  if (auto canary = request.find("canary"); canary != request.end()) {
    if (out.command != "reload") return error("\"canary\" is for the reload command only");
    if (!canary->is_string()) {
      return error(
          fmt::format("\"canary\" must be a string such as \"10%\", not {}", type_of(*canary)));
    }
    auto share = parse_share(canary->get<std::string>());
    if (!share) return share.error();
    out.canary = *share;
  }
  return out;
}

std::string encode_control_message(const nlohmann::json& message) {
  return message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace baton

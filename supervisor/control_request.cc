// Decoding control requests and encoding replies without exceptions.
#include "control_request.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config.h"

namespace baton {
namespace {

constexpr std::string_view kCommands[] = {"status", "reload", "promote", "rollback", "stop"};
constexpr std::string_view kKeys[] = {"command", "wait", "canary"};

/// The JSON type name for messages ("a number", "null").
std::string type_of(const nlohmann::json& v) {
  std::string name = v.type_name();
  return name == "null" ? "null" : (name == "array" || name == "object" ? "an " : "a ") + name;
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
        "unknown command \"{}\" (known: status, reload, promote, rollback, stop)", out.command));
  }
  if (auto wait = request.find("wait"); wait != request.end()) {
    if (!wait->is_boolean()) {
      return error(fmt::format("\"wait\" must be true or false, not {}", type_of(*wait)));
    }
    out.wait = wait->get<bool>();
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

// libFuzzer target: one request line read from the control socket, as
// ControlServer decodes it, and a reply that echoes the raw bytes the way
// baton echoes an app's STATUS= or stderr. Neither decoding nor encoding may
// throw, and every reply must be one line of JSON a client can parse.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "control_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  auto request = baton::parse_control_request(json);
  if (!request.ok() && request.error().message.empty()) __builtin_trap();

  nlohmann::json reply = {
      {"ok", request.ok()},
      {"error", request.ok() ? std::string() : request.error().message},
      {"command", request.ok() ? request->command : std::string()},
      {"input", std::string(reinterpret_cast<const char*>(data), size)},
  };
  std::string line = baton::encode_control_message(reply);
  if (line.find('\n') != std::string::npos) __builtin_trap();
  nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) __builtin_trap();
  return 0;
}

// libFuzzer target: sd_notify datagrams as an app (or anything that can
// reach NOTIFY_SOCKET) sends them. Any bytes decode to a NotifyMessage;
// malformed values are ignored, never trusted.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "notify_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  baton::NotifyMessage msg = baton::parse_notify_message(text);
  // The values baton acts on are the ones it documents as valid.
  if (msg.main_pid && *msg.main_pid <= 0) __builtin_trap();
  if (msg.errno_value && *msg.errno_value < 0) __builtin_trap();
  // STATUS= and BATON_SHIM= are copies of bytes the datagram holds.
  if (msg.status && msg.status->size() > size) __builtin_trap();
  if (msg.baton_shim && msg.baton_shim->size() > size) __builtin_trap();
  return 0;
}

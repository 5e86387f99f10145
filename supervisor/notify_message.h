// NotifyMessage: one sd_notify datagram, decoded. Datagrams are
// newline-separated KEY=VALUE lines (READY=1, STATUS=..., MAINPID=...).
// Parsing is pure; which process sent it comes from SCM_CREDENTIALS, never
// from the text.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace baton {

/// The fields baton acts on. Unknown keys are ignored, as systemd does.
struct NotifyMessage {
  bool ready = false;
  bool reloading = false;
  bool stopping = false;
  bool watchdog = false;
  bool fdstore = false;
  bool barrier = false;
  std::optional<std::string> status;
  std::optional<pid_t> main_pid;
  /// ERRNO=: the app reports it failed with this errno.
  std::optional<int> errno_value;
  /// EXTEND_TIMEOUT_USEC=: the app asks for this much more time.
  std::optional<uint64_t> extend_timeout_usec;
  /// BATON_SHIM=: what the shim reports (BATON_SHIM_LOADED, BATON_SHIM_REFUSED_BIND:
  /// shim/protocol.h).
  std::optional<std::string> baton_shim;
};

/// Decodes a datagram. Malformed values (MAINPID=abc) are ignored.
NotifyMessage parse_notify_message(std::string_view text);

}  // namespace baton

// AppProtocol: how the app of a generation takes its sockets and talks to
// baton. Natively, it takes LISTEN_FDS and only its main pid (or the pid it
// names with MAINPID=) speaks sd_notify. Through the shim (`shim = true`),
// baton's LD_PRELOAD library binds and reports for it: any process of the
// app's group may speak, and the shim's own BATON_SHIM= messages count.
// Every shim-only decision of the lifecycle is made here.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config.h"
#include "environment.h"
#include "instance.h"
#include "notify_message.h"

namespace baton {

class AppProtocol {
 public:
  virtual ~AppProtocol() = default;
  /// Adds what the app needs beyond LISTEN_FDS and NOTIFY_SOCKET.
  virtual void add_environment(const Config& config, Environment& env) const;
  /// True when any process of the instance's group may send notify messages.
  virtual bool any_member_may_notify() const { return false; }
  /// Acts on a message's BATON_SHIM= value; returns why the start failed, if
  /// the message says it did.
  virtual std::optional<std::string> on_shim_message(Instance& inst,
                                                     const NotifyMessage& msg) const;
  /// Why a starting instance sent no READY=1 within ready_timeout: `reason`,
  /// completed with what the protocol knows.
  virtual std::string ready_timeout_reason(const Instance& inst, std::string reason) const;
};

/// The protocol `config` asks for (`shim = true` or not).
std::shared_ptr<const AppProtocol> protocol_for(const Config& config);

}  // namespace baton

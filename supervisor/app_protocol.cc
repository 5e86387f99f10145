#include "app_protocol.h"

#include <fmt/format.h>

#include "shim/protocol.h"

namespace baton {
namespace {

class ShimProtocol final : public AppProtocol {
 public:
  /// The shim's LD_PRELOAD (in front of any the environment had), handed to
  /// the trampoline as BATON_LD_PRELOAD so that it applies to the app only
  /// (a sanitizer build of baton itself must not load it), and the drain
  /// signal the shim intercepts.
  void add_environment(const Config& config, Environment& env) const override {
    std::string preload = config.shim_library;
    if (const std::string* existing = env.get("LD_PRELOAD")) preload += ":" + *existing;
    env.erase("LD_PRELOAD");
    env.set(BATON_ENV_LD_PRELOAD, preload);
    env.set(BATON_ENV_SHIM_DRAIN_SIGNAL, std::to_string(config.drain_signal));
  }

  /// The shim in a pre-fork worker can be the first to see the app accept.
  bool any_member_may_notify() const override { return true; }

  std::optional<std::string> on_shim_message(Instance& inst,
                                             const NotifyMessage& msg) const override {
    if (msg.baton_shim == BATON_SHIM_LOADED) inst.shim_loaded = true;
    if (msg.baton_shim == BATON_SHIM_REFUSED_BIND) {
      return fmt::format("bound a socket of its own: {}",
                         msg.status.value_or("a bind was refused"));
    }
    return std::nullopt;
  }

  std::string ready_timeout_reason(const Instance& inst, std::string reason) const override {
    if (!inst.shim_loaded) {
      return reason +
             ": the shim never loaded in it (a static, setuid or Go binary, or a wrapper "
             "that clears LD_PRELOAD?)";
    }
    return fmt::format(
        "{}: the shim loaded but the app did not bind every configured socket and "
        "start accepting (shim status: \"{}\")",
        reason, inst.status_text);
  }
};

}  // namespace

void AppProtocol::add_environment(const Config&, Environment&) const {}

std::optional<std::string> AppProtocol::on_shim_message(Instance&, const NotifyMessage&) const {
  return std::nullopt;
}

std::string AppProtocol::ready_timeout_reason(const Instance&, std::string reason) const {
  return reason;
}

std::shared_ptr<const AppProtocol> protocol_for(const Config& config) {
  if (config.shim) return std::make_shared<ShimProtocol>();
  return std::make_shared<AppProtocol>();
}

}  // namespace baton

// SocketSet: every listening socket baton holds, for the generations that
// use them. A reload reuses the shared sockets whose address is unchanged,
// or gives the new generation listeners of its own beside the serving ones
// (per-generation listeners, steering.h); it binds new ones before the new
// generation starts, and a socket closes only when the last generation
// using it is gone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "listen_socket.h"
#include "result.h"

namespace baton {

using SharedSocket = std::shared_ptr<ListenSocket>;

class SocketSet {
 public:
  /// The sockets for a generation's `specs`, in order.
  ///
  /// kShared (baton before per-generation listeners, and the default): a
  /// held socket where kind and address match (updated to the new options),
  /// else a new shared socket. A held per-generation listener matches only
  /// if it is its group's serving one: it is returned as it is and stays
  /// serving (so one generation may use another's listener only this way);
  /// candidates and retired listeners are never handed out again.
  ///
  /// kPerGeneration, for each spec:
  /// - a held shared socket on the address is reused (updated) and stays
  ///   shared: bound while listeners = "shared", adopted, reuseport = true,
  ///   abstract unix, refused program;
  /// - a held per-generation listener on the address gets a new listener
  ///   beside it (ListenSocket::bind_beside: tcp/udp in its group, reached
  ///   only by probes until switch_to(); unix on "<path>.baton<n>"). A unix
  ///   private path over 107 bytes makes the serving listener shared
  ///   instead, with the reason, and returns it;
  /// - otherwise the first listener of the address (bind_steered), or a
  ///   shared socket for a spec that cannot be steered. A tcp/udp address on
  ///   which some other socket (a left-over app's, say) is bound is refused
  ///   with EADDRINUSE even if that one has SO_REUSEPORT, as a bind without
  ///   it would be: the first listener carries its program from before
  ///   bind(), and the kernel lets no such socket join another's group.
  ///
  /// On error nothing new stays bound (tcp members shut out to make room
  /// for a new listener stay out).
  Result<std::vector<SharedSocket>> prepare(const std::vector<SocketSpec>& specs,
                                            ListenerMode mode = ListenerMode::kShared);

  /// Adopts sockets bound elsewhere (at start-up), which every generation
  /// shares, for `reason` (their shared_reason()).
  void adopt(const std::vector<SharedSocket>& sockets,
             const std::string& reason = "taken from systemd");

 private:
  using Eligible = std::function<bool(const ListenSocket&)>;

  Result<SharedSocket> prepare_shared(const SocketSpec& spec, std::vector<SharedSocket>& used);
  Result<SharedSocket> prepare_steered(const SocketSpec& spec, std::vector<SharedSocket>& used);
  /// A new per-generation listener beside `held` (see prepare).
  Result<SharedSocket> add_beside(const SocketSpec& spec, const SharedSocket& held);
  /// A held socket with the address of `spec`, not in `used`, for which
  /// `eligible` is true.
  SharedSocket find(const SocketSpec& spec, const std::vector<SharedSocket>& used,
                    const Eligible& eligible);
  void remember(const std::vector<SharedSocket>& sockets);

  /// Every socket some generation may still hold; expired ones are gone.
  std::vector<std::weak_ptr<ListenSocket>> known_;
};

}  // namespace baton

// SocketSet: every listening socket baton holds, shared by the generations
// that use them. A reload reuses the sockets whose address is unchanged,
// binds new ones before the new generation starts, and a socket dropped
// from the config closes only when the last generation using it is gone.
#pragma once

#include <memory>
#include <vector>

#include "config.h"
#include "listen_socket.h"
#include "result.h"

namespace baton {

using SharedSocket = std::shared_ptr<ListenSocket>;

class SocketSet {
 public:
  /// The sockets for a generation's `specs`, in order. kShared, and every
  /// socket that cannot be steered: existing ones where kind and address
  /// match (updated to the new options), new ones bound otherwise.
  /// kPerGeneration: a new listener of its own for each spec, on the same
  /// address as the serving one, which no public connection reaches until
  /// switch_to() (steering.h); a first one where none is held. On error
  /// nothing new stays bound.
  Result<std::vector<SharedSocket>> prepare(const std::vector<SocketSpec>& specs,
                                            ListenerMode mode = ListenerMode::kShared);

  /// Adopts sockets bound elsewhere (at start-up).
  void adopt(const std::vector<SharedSocket>& sockets);

 private:
  /// A held socket with the address of `spec` that is not in `taken`.
  SharedSocket find(const SocketSpec& spec, const std::vector<SharedSocket>& taken);

  /// Every socket some generation may still hold; expired ones are gone.
  std::vector<std::weak_ptr<ListenSocket>> known_;
};

}  // namespace baton

// SocketSet: every listening socket baton holds, shared by the generations
// that use them. A reload reuses the sockets whose address is unchanged,
// binds new ones before the new generation starts, and a socket dropped
// from the config closes only when the last generation using it is gone.
#pragma once

#include <memory>
#include <vector>

#include "listen_socket.h"
#include "result.h"

namespace baton {

using SharedSocket = std::shared_ptr<ListenSocket>;

class SocketSet {
 public:
  /// The sockets for `specs`, in order: existing ones where kind and address
  /// match (updated to the new options), new ones bound otherwise. On error
  /// nothing new stays bound.
  Result<std::vector<SharedSocket>> prepare(const std::vector<SocketSpec>& specs);

  /// Adopts sockets bound elsewhere (at start-up).
  void adopt(const std::vector<SharedSocket>& sockets);

 private:
  /// A held socket with the address of `spec` that is not in `taken`.
  SharedSocket find(const SocketSpec& spec, const std::vector<SharedSocket>& taken);

  /// Every socket some generation may still hold; expired ones are gone.
  std::vector<std::weak_ptr<ListenSocket>> known_;
};

}  // namespace baton

// Matching configured sockets to the ones baton already holds.
#include "socket_set.h"

#include <algorithm>

namespace baton {
SharedSocket SocketSet::find(const SocketSpec& spec, const std::vector<SharedSocket>& taken) {
  std::erase_if(known_, [](const auto& weak) { return weak.expired(); });
  SharedSocket match;
  for (const auto& weak : known_) {
    SharedSocket sock = weak.lock();
    if (!sock || !sock->has_address_of(spec)) continue;
    if (std::find(taken.begin(), taken.end(), sock) != taken.end()) continue;
    // Several "port 0" sockets share an address as written: the name decides.
    if (!match || sock->spec().name == spec.name) match = sock;
  }
  return match;
}

Result<std::vector<SharedSocket>> SocketSet::prepare(const std::vector<SocketSpec>& specs,
                                                     ListenerMode) {
  std::vector<SharedSocket> sockets;
  for (const SocketSpec& spec : specs) {
    if (SharedSocket existing = find(spec, sockets)) {
      if (Status s = existing->update(spec); !s) return s.error();
      sockets.push_back(std::move(existing));
      continue;
    }
    auto bound = ListenSocket::bind(spec);
    if (!bound) return bound.error();  // sockets bound so far close with `sockets`
    sockets.push_back(std::make_shared<ListenSocket>(std::move(*bound)));
  }
  adopt(sockets);
  return sockets;
}

void SocketSet::adopt(const std::vector<SharedSocket>& sockets) {
  for (const SharedSocket& s : sockets) {
    bool known = false;
    for (const auto& weak : known_) known = known || weak.lock() == s;
    if (!known) known_.push_back(s);
  }
}

}  // namespace baton

// Matching configured sockets to the ones baton already holds, and binding
// new (shared or per-generation) ones.
#include "socket_set.h"

#include <algorithm>

#include <fmt/format.h>

#include "steering.h"
#include "unix_address.h"

namespace baton {
namespace {

bool shared_or_serving(const ListenSocket& s) {
  return !s.shared_reason().empty() || s.is_serving();
}

/// A per-generation listener still in its group: one whose group lost its
/// serving listener is found this way, so that a new one joins that group.
bool group_member(const ListenSocket& s) {
  return s.group() && s.group()->contains(s.fd());
}

}  // namespace

SharedSocket SocketSet::find(const SocketSpec& spec, const std::vector<SharedSocket>& used,
                             const Eligible& eligible) {
  std::erase_if(known_, [](const auto& weak) { return weak.expired(); });
  SharedSocket match;
  for (const auto& weak : known_) {
    SharedSocket sock = weak.lock();
    if (!sock || !sock->has_address_of(spec) || !eligible(*sock)) continue;
    if (std::find(used.begin(), used.end(), sock) != used.end()) continue;
    // Several "port 0" sockets share an address as written: the name decides.
    if (!match || sock->spec().name == spec.name) match = sock;
  }
  return match;
}

Result<std::vector<SharedSocket>> SocketSet::prepare(const std::vector<SocketSpec>& specs,
                                                     ListenerMode mode) {
  std::vector<SharedSocket> sockets;
  // This generation's sockets and the listeners its new ones were bound
  // beside: no other spec of it may take them.
  std::vector<SharedSocket> used;
  for (const SocketSpec& spec : specs) {
    auto sock =
        mode == ListenerMode::kShared ? prepare_shared(spec, used) : prepare_steered(spec, used);
    if (!sock) return sock.error();  // new ones so far close (and leave their groups) here
    sockets.push_back(*sock);
    used.push_back(std::move(*sock));
  }
  remember(sockets);
  return sockets;
}

Result<SharedSocket> SocketSet::prepare_shared(const SocketSpec& spec,
                                               std::vector<SharedSocket>& used) {
  if (SharedSocket existing = find(spec, used, shared_or_serving)) {
    if (Status s = existing->update(spec); !s) return s.error();
    return existing;
  }
  auto bound = ListenSocket::bind(spec);
  if (!bound) return bound.error();
  return std::make_shared<ListenSocket>(std::move(*bound));
}

Result<SharedSocket> SocketSet::prepare_steered(const SocketSpec& spec,
                                                std::vector<SharedSocket>& used) {
  SharedSocket held = find(spec, used, shared_or_serving);
  if (held && !held->shared_reason().empty()) {
    if (Status s = held->update(spec); !s) return s.error();
    return held;
  }
  if (!held) held = find(spec, used, group_member);
  if (held) {
    used.push_back(held);
    return add_beside(spec, held);
  }
  auto bound = ListenSocket::bind_steered(spec);
  if (!bound) return bound.error();
  return std::make_shared<ListenSocket>(std::move(*bound));
}

Result<SharedSocket> SocketSet::add_beside(const SocketSpec& spec, const SharedSocket& held) {
  std::string private_path;
  if (spec.kind == SocketKind::kUnix) {
    private_path = fmt::format("{}.baton{}", spec.path, held->group()->new_private_number());
    if (private_path.size() > kMaxUnixPath) {
      held->share(fmt::format("a new listener's private path ({}) would be longer than {} bytes",
                              private_path, kMaxUnixPath));
      if (Status s = held->update(spec); !s) return s.error();
      return held;
    }
  }
  auto bound = ListenSocket::bind_beside(spec, *held, private_path);
  if (!bound) return bound.error();
  return std::make_shared<ListenSocket>(std::move(*bound));
}

void SocketSet::adopt(const std::vector<SharedSocket>& sockets, const std::string& reason) {
  for (const SharedSocket& s : sockets) {
    if (!s->group()) s->share(reason);
  }
  remember(sockets);
}

void SocketSet::remember(const std::vector<SharedSocket>& sockets) {
  for (const SharedSocket& s : sockets) {
    bool known = false;
    for (const auto& weak : known_) known = known || weak.lock() == s;
    if (!known) known_.push_back(s);
  }
}

}  // namespace baton

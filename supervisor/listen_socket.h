// ListenSocket: one kernel listening socket that baton binds once and keeps
// open for as long as it runs, so its accept queue outlives every app process.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "result.h"
#include "socket_spec.h"
#include "unique_fd.h"

namespace baton {

/// Where a probe connects to reach one listener alone.
struct ProbeTarget {
  /// tcp: 127.0.0.1:PORT (also for 0.0.0.0 and dual-stack "::"); unix: the
  /// listener's path as it is now (its private path until the switch).
  SocketAddress target;
  /// tcp: the source address to bind ("127.0.0.2"); unix: empty.
  std::string source;
};

class ListenerGroup;

/// A bound (and, for stream sockets, listening) socket. The fd is CLOEXEC;
/// children receive it only through the spawn stdio table. Its file status
/// flags are never changed after binding: they are shared with every app.
class ListenSocket {
 public:
  /// Binds `spec`. Errors name the socket and address:
  /// "http: cannot bind 0.0.0.0:80: Permission denied".
  static Result<ListenSocket> bind(const SocketSpec& spec);

  /// Takes over a socket baton received (socket activation, or its own fd
  /// store given back by systemd) after checking that it is what `spec`
  /// describes: errors say what it is instead. `origin` names it in
  /// messages ("fd 3 (name http) from systemd").
  static Result<ListenSocket> adopt(const SocketSpec& spec, UniqueFd fd, const std::string& origin);

  /// Whether `fd` is the socket `spec` describes; the error describes the
  /// mismatch.
  static Status check_matches(int fd, const SocketSpec& spec, const std::string& origin);

  const SocketSpec& spec() const { return spec_; }
  int fd() const { return fd_.get(); }
  /// The address actually bound (differs from the spec for port 0), and
  /// as text: "127.0.0.1:41234".
  const SocketAddress& bound() const { return bound_; }
  const std::string& bound_address() const { return bound_address_; }

  /// Empty when this socket is one generation's own listener on its
  /// address (per-generation listeners, see steering.h); otherwise why every
  /// generation shares it, for the log and `status` ("reuseport = true lets
  /// the app add copies of its own", "an abstract unix socket cannot be
  /// renamed", "taken from systemd", "listeners = \"shared\"").
  const std::string& shared_reason() const { return shared_reason_; }
  /// How a probe reaches this listener and no other; the error says why it
  /// cannot ("udp", "shared: taken from systemd", "[::1]:8080 is not
  /// reachable from 127.0.0.2").
  Result<ProbeTarget> probe_target() const;

  /// Called once when the socket closes (baton uses it to take the socket
  /// out of systemd's fd store).
  std::function<void(const ListenSocket&)> on_close;

  /// Closes the socket; a unix path socket also removes its file, if the
  /// file is still the one baton created (same inode).
  ~ListenSocket();
  ListenSocket(ListenSocket&&) = default;
  ListenSocket& operator=(ListenSocket&&) = default;

  /// True if `spec` names this socket: same kind and address, where a
  /// configured port 0 also matches the port the kernel chose.
  bool has_address_of(const SocketSpec& spec) const;

  /// Re-applies the options that can change on a bound socket (backlog,
  /// unix file mode) from `spec`; refuses changes that need a new socket.
  Status update(const SocketSpec& spec);

 private:
  ListenSocket() = default;
  void set_bound(SocketAddress bound);

  SocketSpec spec_;
  UniqueFd fd_;
  SocketAddress bound_;
  std::string bound_address_;
  /// Inode of the unix socket file we created; 0 for other kinds.
  ino_t inode_ = 0;
  dev_t device_ = 0;
  std::string shared_reason_ = "listeners = \"shared\"";
  /// Per-generation listeners: the group of listeners on this address.
  std::shared_ptr<ListenerGroup> group_;
};

}  // namespace baton

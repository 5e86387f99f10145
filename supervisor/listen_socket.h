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
  /// tcp: 127.0.0.1:PORT (for 0.0.0.0 and dual-stack "::"), or the
  /// listener's own address when it is bound to a 127.x address; unix: the
  /// listener's path as it is now (its private path until the switch).
  SocketAddress target;
  /// tcp: the source address to bind (kProbeSource, "127.0.0.2"); unix: empty.
  std::string source;
};

class ListenerGroup;
class SocketSet;

/// A bound (and, for stream sockets, listening) socket. The fd is CLOEXEC;
/// children receive it only through the spawn stdio table. Its file status
/// flags are never changed after binding: they are shared with every app.
///
/// A socket is either shared by every generation that uses its address
/// (shared_reason() says why), or one generation's own listener on it, a
/// member of that address's ListenerGroup (steering.h): the group's serving
/// member gets the public connections, its probed member (a candidate) only
/// baton's probes, and retired members (replaced by a switch) nothing new.
class ListenSocket {
 public:
  /// Binds `spec` as a shared socket (listeners = "shared"). Errors name
  /// the socket and address: "http: cannot bind 0.0.0.0:80: Permission
  /// denied".
  static Result<ListenSocket> bind(const SocketSpec& spec);

  /// Binds `spec` as the first per-generation listener on its address: the
  /// serving member of a new group (tcp/udp: SO_REUSEPORT, and a program
  /// sending everything to it attached before it is bound; unix path: the
  /// public path). A spec that cannot be steered gives a shared socket
  /// instead, with the reason: reuseport = true, an abstract unix socket, a
  /// kernel that refuses the program.
  static Result<ListenSocket> bind_steered(const SocketSpec& spec);

  /// Binds a new listener for `spec` beside `serving` (a per-generation
  /// listener with the same address): tcp/udp on the address `serving` is
  /// bound to (the port the kernel chose for port 0), joined to its group
  /// after the other members but the serving one are taken out
  /// (ListenerGroup::make_room), as its probed member; unix on
  /// `private_path`, in the public file's directory with the mode the spec
  /// gives or else the public file's. Backlog and mode come from `spec`;
  /// a v6only that differs from `serving`'s is refused, as update() refuses
  /// it. On error nothing new stays bound or in the group.
  static Result<ListenSocket> bind_beside(const SocketSpec& spec, const ListenSocket& serving,
                                          const std::string& private_path);

  /// Takes over a socket baton received (socket activation, or its own fd
  /// store given back by systemd) after checking that it is what `spec`
  /// describes: errors say what it is instead. `origin` names it in
  /// messages ("fd 3 (name http) from systemd"). It is shared; SocketSet's
  /// adopt() says why.
  static Result<ListenSocket> adopt(const SocketSpec& spec, UniqueFd fd, const std::string& origin);

  /// Whether `fd` is the socket `spec` describes; the error describes the
  /// mismatch.
  static Status check_matches(int fd, const SocketSpec& spec, const std::string& origin);

  const SocketSpec& spec() const { return spec_; }
  int fd() const { return fd_.get(); }
  /// The address actually bound (differs from the spec for port 0), and
  /// as text: "127.0.0.1:41234". A unix candidate's is the public path it
  /// serves once switched (path() is where it is now).
  const SocketAddress& bound() const { return bound_; }
  const std::string& bound_address() const { return bound_address_; }
  /// unix path sockets: the file it is bound at now (a candidate's private
  /// path until the switch); empty for other kinds.
  const std::string& path() const { return path_; }

  /// Empty when this socket is one generation's own listener on its
  /// address (per-generation listeners, see steering.h); otherwise why every
  /// generation shares it, for the log and `status` ("reuseport = true lets
  /// the app add copies of its own", "an abstract unix socket cannot be
  /// renamed", "taken from systemd", "listeners = \"shared\"").
  const std::string& shared_reason() const { return shared_reason_; }
  /// The group of a per-generation listener; null for a shared socket
  /// (except a unix one that became shared, see SocketSet).
  ListenerGroup* group() const { return group_.get(); }
  /// Whether this is a per-generation listener that its group's public
  /// connections (or its public path) reach now.
  bool is_serving() const;
  /// How a probe reaches this listener and no other; the error says why it
  /// cannot ("http: udp cannot be probed", "http: shared: taken from
  /// systemd", "http: [::1]:8080 is not reachable from 127.0.0.2: ...", or
  /// that probes reach another generation's listener now).
  Result<ProbeTarget> probe_target() const;

  /// Makes this per-generation listener its group's serving member
  /// (switch_to() in steering.h does it for a generation's sockets): tcp/udp
  /// re-attach the group's program, unix renames its private path over the
  /// public path, which this socket owns from then on. Nothing for a shared
  /// socket or one already serving.
  Status take_public();

  /// Called once when the socket closes (baton uses it to take the socket
  /// out of systemd's fd store).
  std::function<void(const ListenSocket&)> on_close;

  /// Closes the socket. A per-generation listener leaves its group first (a
  /// tcp one other than the serving one is shut out, see ListenerGroup),
  /// and the group's program follows; a unix path socket removes its file
  /// (a candidate's private one; the public one for the socket that owns it)
  /// if the file is still the one baton created (same inode).
  ~ListenSocket();
  ListenSocket(ListenSocket&&) = default;
  /// Not assignable: closing a listener is a decision (it leaves its group),
  /// not a side effect of assigning another.
  ListenSocket& operator=(ListenSocket&&) = delete;

  /// True if `spec` names this socket: same kind and address, where a
  /// configured port 0 also matches the port the kernel chose.
  bool has_address_of(const SocketSpec& spec) const;

  /// Re-applies the options that can change on a bound socket (backlog,
  /// unix file mode) from `spec`; refuses changes that need a new socket.
  /// The backlog is set again even when unchanged: an app may have called
  /// listen() on the shared socket with a backlog of its own (gunicorn
  /// 2048, node 511), and the next generation gets baton's back.
  Status update(const SocketSpec& spec);

  /// For a listening tcp socket whose backlog is no longer the one baton
  /// set (an app called listen() on it): "the app changed its backlog to
  /// 511 (baton's: 4096, set again for the next generation)"; else empty.
  std::string backlog_note() const;

 private:
  friend class SocketSet;

  ListenSocket() = default;
  void set_bound(SocketAddress bound);
  /// From now on every generation shares this socket, for `reason`.
  void share(std::string reason) { shared_reason_ = std::move(reason); }
  /// Takes the fd and the file of a bound unix path socket (`path`).
  void set_unix_file(const std::string& path);

  SocketSpec spec_;
  UniqueFd fd_;
  SocketAddress bound_;
  std::string bound_address_;
  std::string path_;
  /// Inode of the unix socket file we created; 0 for other kinds.
  ino_t inode_ = 0;
  dev_t device_ = 0;
  /// Empty exactly when group_ is set and this socket was not made shared
  /// later (SocketSet::add_beside).
  std::string shared_reason_ = "listeners = \"shared\"";
  /// Per-generation listeners: the group of listeners on this address.
  /// Members know the group; the group knows members by fd.
  std::shared_ptr<ListenerGroup> group_;
};

}  // namespace baton

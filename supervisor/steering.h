// Per-generation listeners: the kernel SO_REUSEPORT group that holds one
// address's listeners and the program that steers new connections among
// them (ListenerGroup), the switch of public connections from one
// generation's listeners to another's, and the accept-queue lengths the
// drain waits on.
//
// Kernel facts this is built on (each has a "kernel:" case in
// tests/unit/steering_test.cc, so a kernel that changes them fails there):
// - A TCP socket with SO_REUSEPORT joins its address's group at listen(), a
//   UDP socket at bind(). The group's classic BPF program
//   (SO_ATTACH_REUSEPORT_CBPF, no privilege needed) returns the index of a
//   member in join order; an index out of range falls back to the hash.
// - When a member leaves, the LAST member moves into the freed slot.
// - A socket that joins a group is steered by the group's program; a group
//   without one picks a newcomer by hash as soon as it joins, so a group
//   always has one. A socket that attached a program of its own before it
//   is hashed cannot join an existing group at all: its bind() (udp) or
//   listen() (tcp) fails with EADDRINUSE. So the first listener of an
//   address attaches its program before bind() (it can never end up in a
//   group some other process formed), and later ones attach none.
// - shutdown(SHUT_RD) on a listening TCP socket takes it out of the group at
//   once, even while other processes hold the fd (their accept() then fails
//   with EINVAL). A UDP socket leaves only when its last fd is closed.
// - Closing or shutting down a reuseport TCP listener resets the
//   connections in its accept queue, unless net.ipv4.tcp_migrate_req=1 (per
//   network namespace) moves them to another member of the group.
#pragma once

#include <cstdint>
#include <vector>

#include "result.h"
#include "socket_set.h"

namespace baton {

/// The source address of baton's probes; the steering program sends
/// connections (and datagrams) from it to the group's probed member.
inline constexpr char kProbeSource[] = "127.0.0.2";
/// A share of public connections is counted in parts of this many.
inline constexpr uint32_t kShareScale = 10'000;

/// The per-generation listeners of one address. For tcp and udp it is a
/// model of the kernel's SO_REUSEPORT group (its members in slot order) and
/// keeps the group's steering program in step with it: probes (IPv4 source
/// 127.0.0.2) go to the probed member, everything else to the serving one.
/// For unix path sockets it only records which member owns the public path.
///
/// Members are named by baton's fd of them, unique while they are open. The
/// group is shared by its members (ListenSocket::group_) and ends with the
/// last one. The model is exact as long as only baton's sockets join the
/// group and each leaves the kernel's group when the model says it does:
/// - tcp: before a newcomer joins, every member but the serving one is shut
///   out (shutdown(SHUT_RD) on baton's copy), so the group is [serving]
///   and the newcomer takes slot 1; a closing member other than the serving
///   one is shut out too. Removing a member from [serving] or [serving,
///   candidate], or a retired member from [retired, serving], never puts
///   another member at the serving index: between the kernel's slot move and
///   the new program, a stale index is out of range (the hash then picks
///   among what is left, the serving member alone).
/// - udp: shutdown does not take a UDP socket out, so the model drops a
///   member when baton's copy closes, and retired generations' sockets stay
///   members while baton holds them. The race: if some process still holds
///   the socket when baton's copy closes (a child that escaped the old
///   generation), the kernel keeps it in its slot while the model has moved
///   the last member there, and the program may send datagrams to it, the
///   serving ones too if the serving member was the one moved. The two agree
///   again when that process closes it (the kernel then makes the same
///   move), unless a member joined in between.
class ListenerGroup {
 public:
  /// The members (fds) public connections and probes go to: probes to the
  /// probed member (else the serving one); of public connections, `share`
  /// in kShareScale to the probed member, chosen at random per connection
  /// (per datagram for udp), the rest to the serving one.
  struct Routing {
    int serving = -1;
    int probed = -1;
    uint32_t share = 0;
  };

  explicit ListenerGroup(SocketKind kind) : kind_(kind) {}
  ListenerGroup(const ListenerGroup&) = delete;
  ListenerGroup& operator=(const ListenerGroup&) = delete;

  SocketKind kind() const { return kind_; }
  /// The members in the kernel's slot order (unix: in the order they came).
  const std::vector<int>& slots() const { return slots_; }
  bool contains(int fd) const { return index_of(fd) != UINT32_MAX; }
  const Routing& routing() const { return routing_; }
  /// The member probes reach: the probed one, else the serving one.
  int probe_target() const { return routing_.probed >= 0 ? routing_.probed : routing_.serving; }

  /// Records that `fd` joined (it takes the next slot) as the serving member
  /// (`serving`, the first listener of a new group) or as the probed one,
  /// and attaches the program through `fd`. The first listener joins the
  /// model before it is bound, so its program is attached before any
  /// connection can reach it (the kernel keeps it for the group it forms).
  Status joined(int fd, bool serving);
  /// tcp: takes every member but the serving one out of the kernel's group
  /// (see the class comment), so that a newcomer takes slot 1. Those sockets
  /// stop listening for every process that holds them; what is still in
  /// their accept queues is reset (the reload drains a generation only once
  /// its queue is empty). udp/unix: nothing.
  void make_room();
  /// tcp: shutdown(SHUT_RD) on `fd`, then left(fd).
  void shut_out(int fd);
  /// Records that `fd` is no longer in the kernel's group: the last slot
  /// moves into its slot, as the kernel moves it, and the program follows.
  /// A member that was already out is ignored. A program the kernel refuses
  /// here is logged (the old one stays).
  void left(int fd);
  /// Routes public connections and probes to `routing`'s members and
  /// attaches the program (switch_to: {fd, -1}).
  Status route(Routing routing);

  /// unix: a new number for a candidate's private path ("<path>.baton<n>").
  unsigned new_private_number() { return ++private_numbers_; }

 private:
  /// Attaches the program for `routing_` through `fd`, a socket in the
  /// group (or, for the first listener, about to form it).
  Status attach(int fd) const;
  /// The slot of `fd`, or UINT32_MAX (out of range: the hash decides).
  uint32_t index_of(int fd) const;

  SocketKind kind_;
  std::vector<int> slots_;
  /// Members of slots_, or -1 (no serving member: public connections are
  /// hashed among the members; no probed member: probes go to the serving
  /// one).
  Routing routing_;
  unsigned private_numbers_ = 0;
};

/// Every later public connection on these sockets' addresses goes to them:
/// each becomes its group's serving member (tcp/udp: the group's program
/// sends everything, probes included, to it; unix: its private path is
/// renamed over the public path, atomically for later connect()s). Shared
/// sockets and sockets already serving are skipped. tcp/udp switch first:
/// if one fails, those switched before it are switched back; a unix rename
/// that fails also switches the tcp/udp ones back, but earlier renames stay
/// (a rename cannot be taken back). Errors name the socket.
Status switch_to(const std::vector<SharedSocket>& sockets);

/// Rolling and canary deploys: `share` in kShareScale of later public
/// connections (tcp) and datagrams (udp) on these sockets' addresses go to
/// them, at random, the rest to the serving member; probes still reach
/// them alone. Each must be its group's probed member (a candidate's
/// listener). 0 takes every public connection back from them. Shared, unix
/// and serving sockets are skipped (a unix path has one owner: it switches
/// at switch_to). Errors name the socket; on error the sockets switched
/// before it keep their new share.
Status share_with(const std::vector<SharedSocket>& sockets, uint32_t share);

/// Connections waiting in the accept queues of `sockets` (0 for sockets
/// that cannot tell, such as udp).
int queued_connections(const std::vector<SharedSocket>& sockets);

/// One socket's accept queue: tcp from TCP_INFO (tcpi_unacked on a
/// listening socket), unix stream from sock_diag (UDIAG_SHOW_RQLEN); 0 for
/// udp, a socket no longer listening, or when the kernel cannot tell.
int queued_connections(const ListenSocket& socket);

}  // namespace baton

// Socket holders: which processes hold a given kernel socket, found through
// /proc. baton uses it to find processes that escaped an app's process group
// but still hold one of baton's listening sockets, and to name whoever holds
// an address that baton cannot bind.
//
// Traps:
// - /proc is a snapshot taken one process at a time, never atomically. A
//   holder may fork or pass the socket on (SCM_RIGHTS) while the scan runs,
//   so a caller that ends holders must scan again afterwards until none is
//   left. A socket sitting in a unix socket's queue as SCM_RIGHTS data, or
//   registered with io_uring, is held by no process the scan can see.
// - A pid names a process only while that process lives; the pid may be
//   reused once it exits. Before signalling a holder, pin it with
//   pidfd_open(pid) and check that it still holds the socket (scan again), or
//   signal at once and accept the small window.
// - Visibility: /proc/PID/fd can be read only for processes baton may ptrace
//   (same user and dumpable, or CAP_SYS_PTRACE). Others are skipped silently,
//   as are processes hidden by hidepid= or outside baton's pid namespace. So
//   an empty result does not prove that nobody holds the socket: when
//   inodes_bound_to() finds a socket but find_socket_holders() finds no
//   holder, it is held by a process baton may not inspect.
// - sock_diag and /proc/net/unix describe baton's network namespace only; socket inodes are
//   global, so holders in other network namespaces are still found by inode.
// - Cost: one scan reads every /proc/PID/fd directory on the system and calls
//   readlink() once per open fd, O(processes + open fds): milliseconds for a
//   few hundred processes, tens of ms for thousands. inodes_bound_to() asks
//   sock_diag for listeners only: the tens of thousands of TIME_WAIT sockets
//   a busy port leaves cost nothing (read from /proc/net/tcp, which formats
//   every one, they cost seconds). Both are for the
//   rare moments an instance ends, baton stops or a bind fails, never for a
//   hot path or a timer.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "result.h"
#include "socket_spec.h"

namespace baton {

/// The inode number of the socket `fd`, the number /proc shows as
/// "socket:[INODE]" and lists in /proc/net/*. Fails with ENOTSOCK if `fd` is
/// not a socket, EBADF if it is not open.
Result<ino_t> socket_inode(int fd);

/// One process that holds at least one of the sockets looked for.
struct SocketHolder {
  /// The process (thread group) id in baton's pid namespace.
  pid_t pid = -1;
  /// Its process group when it was scanned; -1 if that could not be read.
  pid_t pgid = -1;
  /// Its command line with NULs as spaces and control characters as '?',
  /// cut to at most 120 bytes plus "..."; "[comm]" if the command line is
  /// empty. For messages only: a process can rewrite its own.
  std::string command;
  /// The sockets looked for that it holds: sorted, each once, never empty.
  std::vector<ino_t> inodes;
};

/// Every process that holds one of the sockets `inodes`, sorted by pid, with
/// the processes `exclude` (baton itself) left out. Processes that exit
/// during the scan and fd tables it may not read are skipped. Memory is
/// bounded by the result: fixed buffers for directory entries, links and
/// command lines. An empty `inodes` gives an empty result without a scan.
std::vector<SocketHolder> find_socket_holders(const std::vector<ino_t>& inodes,
                                              const std::vector<pid_t>& exclude);

/// "pid 123 (sleep 300), pid 456 (python3 -m http.server)"; "" for none.
std::string describe_holders(const std::vector<SocketHolder>& holders);

/// The sockets (sorted inodes) that can make binding `spec` fail with
/// EADDRINUSE, from sock_diag (tcp, udp) and /proc/net/unix: TCP sockets in LISTEN
/// and UDP sockets in any state on the same port whose local address is the
/// same or a wildcard on either side; unix sockets bound to the same path or
/// abstract name, other than connections accepted from them. Across
/// families: a v4 spec matches v6 sockets on "::" (baton does not read their
/// IPV6_V6ONLY: any of them may be dual-stack); a v6 spec on "::" without
/// v6only matches every v4 socket on its port. Port 0 matches nothing. A
/// unix socket bound by a relative path is listed under that relative path,
/// so it is not matched.
std::vector<ino_t> inodes_bound_to(const SocketSpec& spec);

}  // namespace baton

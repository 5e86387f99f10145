// sock_diag (NETLINK_SOCK_DIAG): the kernel's own listing of its sockets,
// filtered by state before anything is formatted. Header-only: baton and the
// tests' loopback helpers (which do not link baton_core) share it.
#pragma once

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

#include "unique_fd.h"

namespace baton {

/// Calls `f(msg)` for every socket of `family` and `protocol` in one of the
/// TCP `states` (a bit per state; udp sockets have TCP-like states too)
/// that sock_diag (NETLINK_SOCK_DIAG) dumps. The kernel filters by state
/// before it formats anything, so asking for listeners costs the listeners,
/// not the thousands of TIME_WAIT sockets a busy port leaves: reading
/// /proc/net/tcp, which formats them all, took seconds with 80,000 of them.
template <class F>
void for_each_inet_socket(int family, int protocol, uint32_t states, F&& f) {
  UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl.valid()) return;
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = static_cast<uint8_t>(protocol);
  message.request.idiag_states = states;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl.get(), &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) != static_cast<ssize_t>(sizeof message)) {
    return;
  }
  // The kernel fills each reply as it is read: recv() does not wait.
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(nl.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return;
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
        f(*static_cast<const inet_diag_msg*>(NLMSG_DATA(h)));
    }
  }
}

}  // namespace baton

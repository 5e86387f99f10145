// The steering program and the model of a reuseport group (ListenerGroup),
// the switch, and the accept-queue lengths (TCP_INFO, sock_diag).
#include "steering.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unique_fd.h"

namespace baton {
namespace {

constexpr sock_filter stmt(uint16_t code, uint32_t k) {
  return sock_filter{code, 0, 0, k};
}
constexpr sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

/// The steering program: IPv4 packets from kProbeSource return `probed`;
/// of the others, `share` in kShareScale return `probed` too, chosen by the
/// kernel's per-packet random number (SKF_AD_RANDOM), the rest `serving`.
/// SKF_NET_OFF makes the loads relative to the network header (the skb's
/// data is past the transport header by then). IPv6 packets are never
/// probes, which is fine: probes are IPv4, also to a dual-stack "::"
/// listener (v4-mapped), whose packets are IPv4.
std::array<sock_filter, 11> steering_program(uint32_t probed, uint32_t serving, uint32_t share) {
  const auto net = static_cast<uint32_t>(SKF_NET_OFF);
  const auto random = static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM);
  const uint32_t source = ntohl(inet_addr(kProbeSource));
  return {{
      stmt(BPF_LD | BPF_B | BPF_ABS, net),       // A = first byte of the IP header
      stmt(BPF_ALU | BPF_RSH | BPF_K, 4),        // A = IP version
      jump(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 3),  // not IPv4: public
      stmt(BPF_LD | BPF_W | BPF_ABS, net + 12),  // A = IPv4 source address
      jump(BPF_JMP | BPF_JEQ | BPF_K, source, 0, 1),
      stmt(BPF_RET | BPF_K, probed),           // a probe
      stmt(BPF_LD | BPF_W | BPF_ABS, random),  // public: A = a random u32
      stmt(BPF_ALU | BPF_MOD | BPF_K, kShareScale),
      jump(BPF_JMP | BPF_JGE | BPF_K, share, 0, 1),
      stmt(BPF_RET | BPF_K, serving),
      stmt(BPF_RET | BPF_K, probed),
  }};
}

}  // namespace

uint32_t ListenerGroup::index_of(int fd) const {
  auto it = std::find(slots_.begin(), slots_.end(), fd);
  if (fd < 0 || it == slots_.end()) return UINT32_MAX;
  return static_cast<uint32_t>(it - slots_.begin());
}

Status ListenerGroup::attach(int fd) const {
  if (kind_ == SocketKind::kUnix) return {};
  uint32_t serving = index_of(routing_.serving);
  uint32_t probed = routing_.probed >= 0 ? index_of(routing_.probed) : serving;
  uint32_t share = routing_.probed >= 0 ? std::min(routing_.share, kShareScale) : 0;
  auto program = steering_program(probed, serving, share);
  sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
    return sys_error("the kernel refused the steering program (SO_ATTACH_REUSEPORT_CBPF)");
  }
  return {};
}

Status ListenerGroup::joined(int fd, bool serving) {
  slots_.push_back(fd);
  (serving ? routing_.serving : routing_.probed) = fd;
  if (!serving) routing_.share = 0;  // a newcomer gets no public connection
  return attach(fd);
}

void ListenerGroup::make_room() {
  if (kind_ != SocketKind::kTcp) return;
  std::vector<int> others;
  for (int fd : slots_) {
    if (fd != routing_.serving) others.push_back(fd);
  }
  for (int fd : others) shut_out(fd);
}

void ListenerGroup::shut_out(int fd) {
  if (kind_ != SocketKind::kTcp || index_of(fd) == UINT32_MAX) return;
  // On a listening TCP socket this unhashes it: it leaves the reuseport
  // group now, whoever else holds the fd (tcp_disconnect).
  shutdown(fd, SHUT_RD);
  left(fd);
}

void ListenerGroup::left(int fd) {
  uint32_t i = index_of(fd);
  if (i == UINT32_MAX) return;
  // The kernel's move: the last member takes the freed slot.
  slots_[i] = slots_.back();
  slots_.pop_back();
  if (routing_.serving == fd) routing_.serving = -1;
  if (routing_.probed == fd) {
    routing_.probed = -1;
    routing_.share = 0;
  }
  if (slots_.empty()) return;
  if (Status s = attach(slots_.front()); !s) {
    spdlog::error("listener group: {}; connections may reach the wrong generation",
                  s.error().message);
  }
}

Status ListenerGroup::route(Routing routing) {
  Routing before = routing_;
  routing_ = routing;
  int through = routing.serving >= 0 ? routing.serving : routing.probed;
  if (through < 0 || index_of(through) == UINT32_MAX) {
    if (slots_.empty()) return {};
    through = slots_.front();
  }
  Status s = attach(through);
  if (!s) routing_ = before;
  return s;
}

Status switch_to(const std::vector<SharedSocket>& sockets) {
  // Programs first: they can be put back, a rename cannot.
  std::vector<std::pair<ListenerGroup*, ListenerGroup::Routing>> switched;
  auto undo = [&switched] {
    for (auto it = switched.rbegin(); it != switched.rend(); ++it)
      (void)it->first->route(it->second);
  };
  for (bool unix_sockets : {false, true}) {
    for (const SharedSocket& s : sockets) {
      ListenerGroup* group = s->group();
      if (!group || (group->kind() == SocketKind::kUnix) != unix_sockets) continue;
      ListenerGroup::Routing before = group->routing();
      if (Status st = s->take_public(); !st) {
        undo();
        return st;
      }
      if (!unix_sockets) switched.emplace_back(group, before);
    }
  }
  return {};
}

Status share_with(const std::vector<SharedSocket>& sockets, uint32_t share) {
  for (const SharedSocket& s : sockets) {
    ListenerGroup* group = s->group();
    if (!group || !s->shared_reason().empty() || group->kind() == SocketKind::kUnix ||
        s->is_serving()) {
      continue;
    }
    if (group->routing().probed != s->fd()) {
      return error(fmt::format("{}: the listener on {} is not its group's candidate",
                               s->spec().name, s->bound_address()));
    }
    ListenerGroup::Routing routing = group->routing();
    routing.share = std::min(share, kShareScale);
    if (Status st = group->route(routing); !st) {
      return Error{fmt::format("{}: cannot share {} with the new listener: {}", s->spec().name,
                               s->bound_address(), st.error().message),
                   st.error().sys_errno};
    }
  }
  return {};
}

namespace {

/// Asks sock_diag on `nl` about the unix socket with inode `inode`: its
/// queue lengths (UDIAG_SHOW_RQLEN).
bool request_unix_diag(int nl, ino_t inode) {
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;  // one socket, by inode: no dump
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = ~0U;
  message.request.udiag_ino = static_cast<uint32_t>(inode);
  message.request.udiag_show = UDIAG_SHOW_RQLEN;
  message.request.udiag_cookie[0] = message.request.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  return sendto(nl, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
                sizeof kernel) == static_cast<ssize_t>(sizeof message);
}

/// The pending connections of a listening unix stream socket: sock_diag
/// finds it by inode and reports its receive queue (UNIX_DIAG_RQLEN's
/// udiag_rqueue: for a listener, the connections not yet accepted). -1 if
/// the kernel cannot tell (no unix_diag, or an error reply).
int unix_queue(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl.valid() || !request_unix_diag(nl.get(), st.st_ino)) return -1;
  alignas(nlmsghdr) char reply[1024];
  ssize_t n = recv(nl.get(), reply, sizeof reply, 0);
  const auto* h = reinterpret_cast<const nlmsghdr*>(reply);
  if (n < 0 || !NLMSG_OK(h, static_cast<unsigned>(n)) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY) {
    return -1;
  }
  const auto* msg = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
  int length = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *msg));
  for (auto* a = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(a, length);
       a = RTA_NEXT(a, length)) {
    if (a->rta_type == UNIX_DIAG_RQLEN) {
      return static_cast<int>(static_cast<const unix_diag_rqlen*>(RTA_DATA(a))->udiag_rqueue);
    }
  }
  return -1;
}

}  // namespace

int queued_connections(const ListenSocket& socket) {
  int listening = 0;
  socklen_t len = sizeof listening;
  if (getsockopt(socket.fd(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    return 0;
  }
  if (socket.spec().kind == SocketKind::kTcp) {
    // On a listening socket, tcpi_unacked is the accept queue's length
    // (sk_ack_backlog) and tcpi_sacked its limit.
    tcp_info info{};
    len = sizeof info;
    if (getsockopt(socket.fd(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    return static_cast<int>(info.tcpi_unacked);
  }
  if (socket.spec().kind == SocketKind::kUnix) return std::max(unix_queue(socket.fd()), 0);
  return 0;
}

int queued_connections(const std::vector<SharedSocket>& sockets) {
  int total = 0;
  for (const SharedSocket& s : sockets) total += queued_connections(*s);
  return total;
}

}  // namespace baton

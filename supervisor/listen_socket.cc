// Binding listening sockets: TCP v4/v6, UDP and unix stream (path or abstract),
// shared or per generation (a member of a ListenerGroup, steering.h).
#include "listen_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "file_util.h"
#include "steering.h"
#include "unix_address.h"

namespace baton {
namespace {

/// An IP socket address.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

/// The sockaddr of a tcp/udp address (family, address bytes and port).
SockAddr inet_address(const SocketAddress& at) {
  SockAddr a;
  if (at.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(at.port);
    std::memcpy(&in6->sin6_addr, at.ip.data(), sizeof in6->sin6_addr);
    a.length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(at.port);
    std::memcpy(&in4->sin_addr, at.ip.data(), sizeof in4->sin_addr);
    a.length = sizeof(sockaddr_in);
  }
  return a;
}

Result<UnixAddress> spec_unix_address(const SocketSpec& spec) {
  return spec.abstract ? unix_abstract_address(spec.path) : unix_path_address(spec.path);
}

/// The address `fd` is bound to: what getsockname says (the port the kernel
/// chose for port 0); a unix socket's is the configured one.
SocketAddress bound_address_of(int fd, const SocketSpec& spec) {
  if (spec.kind == SocketKind::kUnix) return spec.socket_address();
  SockAddr a;
  a.length = sizeof a.storage;
  if (getsockname(fd, a.get(), &a.length) != 0) return spec.socket_address();
  return socket_address_of(spec.kind, a.get(), a.length);
}

Status set_option(int fd, int level, int name, int value, const SocketSpec& spec,
                  std::string_view what) {
  if (setsockopt(fd, level, name, &value, sizeof value) == 0) return {};
  return sys_error(fmt::format("{}: cannot set {} on {}", spec.name, what, spec.address()));
}

/// SO_REUSEADDR (tcp), IPV6_V6ONLY (v6) and SO_REUSEPORT if `reuseport`.
Status set_inet_options(int fd, const SocketSpec& spec, bool reuseport) {
  if (spec.kind == SocketKind::kTcp) {
    // Lets baton rebind right after a previous run left TIME_WAIT entries.
    if (auto s = set_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, spec, "SO_REUSEADDR"); !s) return s;
  }
  if (spec.family == AF_INET6) {
    if (auto s = set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, spec.v6only, spec, "IPV6_V6ONLY"); !s) {
      return s;
    }
  }
  if (reuseport) return set_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, spec, "SO_REUSEPORT");
  return {};
}

/// Makes room for a unix socket file: a stale socket (nobody accepting) is
/// removed; a live socket or any other kind of file is left alone and refused.
Status clear_stale_unix_path(const SocketSpec& spec) {
  struct stat st;
  if (lstat(spec.path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) {
    return error(fmt::format("{}: cannot bind {}: the path exists and is not a socket", spec.name,
                             spec.path));
  }
  auto a = spec_unix_address(spec);
  if (!a) return Error{fmt::format("{}: cannot bind: {}", spec.name, a.error().message)};
  UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe.valid() && connect(probe.get(), a->get(), a->length) == 0) {
    return Error{
        fmt::format("{}: cannot bind {}: another process is listening on it", spec.name, spec.path),
        EADDRINUSE};
  }
  if (errno != ECONNREFUSED) return {};  // let bind() report what is wrong
  if (unlink(spec.path.c_str()) != 0 && errno != ENOENT) {
    return sys_error(fmt::format("{}: cannot remove stale socket {}", spec.name, spec.path));
  }
  return {};
}

/// Binds a unix path socket. With a configured mode, the file never has wider
/// permissions than asked for: bind under a umask that denies everything but
/// the owner, then chmod. (umask is process-wide; baton binds before it
/// starts any thread.) Without one, the file gets baton's umask.
Status bind_unix_path(int fd, const SocketSpec& spec) {
  if (auto s = clear_stale_unix_path(spec); !s) return s;
  auto a = spec_unix_address(spec);
  if (!a) return Error{fmt::format("{}: cannot bind: {}", spec.name, a.error().message)};
  mode_t old_mask = spec.mode ? umask(0077) : 0;
  int rc = ::bind(fd, a->get(), a->length);
  int err = errno;
  if (spec.mode) umask(old_mask);
  if (rc != 0) return sys_error(fmt::format("{}: cannot bind {}", spec.name, spec.path), err);
  if (spec.mode && chmod(spec.path.c_str(), *spec.mode) != 0) {
    Error e =
        sys_error(fmt::format("{}: cannot chmod {} to {:o}", spec.name, spec.path, *spec.mode));
    unlink(spec.path.c_str());  // ours: bind() just made it
    return e;
  }
  return {};
}

/// A new socket of `spec`'s kind and family, not yet bound.
Result<UniqueFd> new_socket(const SocketSpec& spec) {
  int family = spec.kind == SocketKind::kUnix ? AF_UNIX : spec.family;
  int type = spec.kind == SocketKind::kUdp ? SOCK_DGRAM : SOCK_STREAM;
  UniqueFd fd(socket(family, type | SOCK_CLOEXEC | (spec.nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (!fd.valid()) return sys_error(fmt::format("{}: cannot create socket", spec.name));
  return fd;
}

/// `nonblocking = true` on a socket baton did not create, or one whose
/// config turned it on. Never cleared: an app that shares the socket may
/// have set it, and a blocking listener under an app that polls before it
/// accepts can leave the app waiting in accept().
Status apply_nonblocking(int fd, const SocketSpec& spec) {
  if (!spec.nonblocking) return {};
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) != 0) return {};
  if (flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) return {};
  return sys_error(fmt::format("{}: cannot make {} non-blocking", spec.name, spec.address()));
}

/// listen() for stream sockets. The kernel clamps the backlog to
/// net.core.somaxconn, so INT_MAX asks for the system maximum.
Status listen_for(int fd, const SocketSpec& spec) {
  if (spec.kind == SocketKind::kUdp || listen(fd, spec.backlog.value_or(INT_MAX)) == 0) return {};
  return sys_error(fmt::format("{}: cannot listen on {}", spec.name, spec.address()));
}

/// Binds a tcp/udp socket at `at` (named `address` in messages) and
/// listens. With SO_REUSEPORT, this is where it joins its address's group:
/// udp at bind(), tcp at listen().
Status bind_inet(int fd, const SocketSpec& spec, const SocketAddress& at,
                 const std::string& address) {
  SockAddr a = inet_address(at);
  if (::bind(fd, a.get(), a.length) != 0) {
    return sys_error(fmt::format("{}: cannot bind {}", spec.name, address));
  }
  return listen_for(fd, spec);
}

Status bind_unix(int fd, const SocketSpec& spec) {
  if (!spec.abstract) {
    if (Status s = bind_unix_path(fd, spec); !s) return s;
    Status listening = listen_for(fd, spec);
    if (!listening) unlink(spec.path.c_str());  // ours: bind() just made it
    return listening;
  }
  auto a = spec_unix_address(spec);
  if (!a) return Error{fmt::format("{}: cannot bind: {}", spec.name, a.error().message)};
  if (::bind(fd, a->get(), a->length) != 0) {
    return sys_error(fmt::format("{}: cannot bind {}", spec.name, spec.address()));
  }
  return listen_for(fd, spec);
}

const char* const kReuseportReason = "reuseport = true lets the app add copies of its own";
const char* const kAbstractReason = "an abstract unix socket cannot be renamed";

}  // namespace

Result<ListenSocket> ListenSocket::bind(const SocketSpec& spec) {
  auto fd = new_socket(spec);
  if (!fd) return fd.error();
  ListenSocket sock;
  if (spec.kind == SocketKind::kUnix) {
    if (Status s = bind_unix(fd->get(), spec); !s) return s.error();
    if (!spec.abstract) sock.set_unix_file(spec.path);
  } else {
    if (Status s = set_inet_options(fd->get(), spec, spec.reuseport); !s) return s.error();
    Status bound = bind_inet(fd->get(), spec, spec.socket_address(), spec.address());
    if (!bound) return bound.error();
  }
  sock.spec_ = spec;
  sock.set_bound(bound_address_of(fd->get(), spec));
  sock.fd_ = std::move(*fd);
  return sock;
}

Result<ListenSocket> ListenSocket::bind_steered(const SocketSpec& spec) {
  const char* unsteerable = spec.reuseport                                    ? kReuseportReason
                            : spec.kind == SocketKind::kUnix && spec.abstract ? kAbstractReason
                                                                              : nullptr;
  if (unsteerable || spec.kind == SocketKind::kUnix) {
    auto sock = bind(spec);
    if (!sock) return sock;
    sock->share(unsteerable ? unsteerable : "");
    if (!unsteerable) {
      sock->group_ = std::make_shared<ListenerGroup>(SocketKind::kUnix);
      (void)sock->group_->joined(sock->fd(), true);  // unix: bookkeeping only
    }
    return sock;
  }
  auto fd = new_socket(spec);
  if (!fd) return fd.error();
  if (Status s = set_inet_options(fd->get(), spec, true); !s) return s.error();
  // The program goes on before bind() and listen(): the socket forms the
  // group with it, so no later member is ever picked by hash; and with a
  // program of its own the kernel refuses to add it to a group another
  // socket on the address formed (EADDRINUSE, as without SO_REUSEPORT).
  auto group = std::make_shared<ListenerGroup>(spec.kind);
  if (Status s = group->joined(fd->get(), true); !s) {
    auto sock = bind(spec);  // a plain socket, as with listeners = "shared"
    if (sock) sock->share(s.error().message);
    return sock;
  }
  Status bound = bind_inet(fd->get(), spec, spec.socket_address(), spec.address());
  if (!bound) return bound.error();
  ListenSocket sock;
  sock.spec_ = spec;
  sock.set_bound(bound_address_of(fd->get(), spec));
  sock.fd_ = std::move(*fd);
  sock.shared_reason_.clear();
  sock.group_ = std::move(group);
  return sock;
}

namespace {

/// v6only and reuseport: a bound socket keeps them, and a new listener
/// beside one joins its group only with the same (see bind_beside).
Status check_fixed_options(const SocketSpec& spec, const SocketSpec& current) {
  if (spec.v6only == current.v6only && spec.reuseport == current.reuseport) return {};
  return error(
      fmt::format("{}: v6only and reuseport cannot change on a bound socket ({}); "
                  "restart baton to apply them",
                  spec.name, spec.address()));
}

/// Binds a unix candidate at `private_path` (beside `public_file`, the
/// serving one's), with the spec's mode or else the public file's: after
/// the rename, the public path is what it was.
Status bind_private(int fd, SocketSpec spec, const std::string& private_path,
                    const std::string& public_file) {
  spec.path = private_path;
  struct stat st;
  if (!spec.mode && stat(public_file.c_str(), &st) == 0) spec.mode = st.st_mode & 07777;
  return bind_unix(fd, spec);
}

}  // namespace

Result<ListenSocket> ListenSocket::bind_beside(const SocketSpec& spec, const ListenSocket& serving,
                                               const std::string& private_path) {
  if (Status s = check_fixed_options(spec, serving.spec_); !s) return s.error();
  const std::shared_ptr<ListenerGroup>& group = serving.group_;
  if (!group || !serving.shared_reason_.empty()) {
    return error(
        fmt::format("{}: {} is not a per-generation listener", spec.name, serving.bound_address_));
  }
  auto fd = new_socket(spec);
  if (!fd) return fd.error();
  ListenSocket sock;
  if (spec.kind == SocketKind::kUnix) {
    if (Status s = bind_private(fd->get(), spec, private_path, serving.path_); !s) return s.error();
    sock.set_unix_file(private_path);
  } else {
    if (Status s = set_inet_options(fd->get(), spec, true); !s) return s.error();
    group->make_room();
    Status bound = bind_inet(fd->get(), spec, serving.bound_, serving.bound_address_);
    if (!bound) return bound.error();
  }
  if (Status s = group->joined(fd->get(), false); !s) {
    // In the kernel's group, but the program still has the old indices
    // (the newcomer is last, so nothing moves when it leaves again).
    int number = fd->get();
    group->shut_out(number);
    fd->reset();
    group->left(number);
    return Error{fmt::format("{}: cannot add a listener on {}: {}", spec.name,
                             serving.bound_address_, s.error().message),
                 s.error().sys_errno};
  }
  sock.spec_ = spec;
  sock.set_bound(serving.bound_);
  sock.fd_ = std::move(*fd);
  sock.shared_reason_.clear();
  sock.group_ = group;
  return sock;
}

namespace {

/// The kind and address of the socket `fd` (unix for AF_UNIX, else udp for
/// a datagram socket, else tcp); nullopt if it is not a socket.
std::optional<SocketAddress> socket_address_of_fd(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return std::nullopt;
  len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return std::nullopt;
  SocketKind kind = domain == AF_UNIX    ? SocketKind::kUnix
                    : type == SOCK_DGRAM ? SocketKind::kUdp
                                         : SocketKind::kTcp;
  SockAddr a;
  a.length = sizeof a.storage;
  if (getsockname(fd, a.get(), &a.length) != 0) return std::nullopt;
  return socket_address_of(kind, a.get(), a.length);
}

}  // namespace

Status ListenSocket::check_matches(int fd, const SocketSpec& spec, const std::string& origin) {
  std::optional<SocketAddress> actual = socket_address_of_fd(fd);
  // Port 0 in the config accepts whatever port the socket has.
  if (actual && spec.socket_address().admits(*actual)) return {};
  std::string what =
      actual ? fmt::format("a {} {} socket", socket_kind_name(actual->kind), actual->to_string())
             : std::string("not a socket");
  return error(fmt::format("{}: {} is {}, but the config wants {} {} ({})", spec.name, origin, what,
                           spec.kind_name(), spec.address(), spec.url));
}

Result<ListenSocket> ListenSocket::adopt(const SocketSpec& spec, UniqueFd fd,
                                         const std::string& origin) {
  if (Status s = check_matches(fd.get(), spec, origin); !s) return s.error();
  int listening = 0;
  socklen_t len = sizeof listening;
  getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  if (spec.kind != SocketKind::kUdp && !listening &&
      listen(fd.get(), spec.backlog.value_or(INT_MAX)) != 0) {
    return sys_error(fmt::format("{}: cannot listen on {}", spec.name, origin));
  }
  if (Status s = apply_nonblocking(fd.get(), spec); !s) return s.error();
  // Not bound by baton: its file (if any) belongs to whoever created it.
  ListenSocket sock;
  sock.spec_ = spec;
  if (spec.kind == SocketKind::kUnix && !spec.abstract) sock.path_ = spec.path;
  sock.set_bound(bound_address_of(fd.get(), spec));
  sock.fd_ = std::move(fd);
  return sock;
}

void ListenSocket::set_bound(SocketAddress bound) {
  bound_ = std::move(bound);
  bound_address_ = bound_.to_string();
}

void ListenSocket::set_unix_file(const std::string& path) {
  path_ = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    inode_ = st.st_ino;
    device_ = st.st_dev;
  }
}

ListenSocket::~ListenSocket() {
  if (!fd_.valid()) return;
  if (on_close) on_close(*this);
  struct stat st;
  if (inode_ != 0 && stat(path_.c_str(), &st) == 0 && st.st_ino == inode_ && st.st_dev == device_) {
    unlink(path_.c_str());
  }
  if (!group_) return;
  // A tcp member leaves the kernel's group now, even if an app still holds
  // it, so the group's slots stay what the model says. Not the serving
  // one: it closes only when its generation and the set let go of it, at
  // stop, and its copy in systemd's fd store must stay listening for the
  // next baton (its group ends with this baton anyway).
  int number = fd_.get();
  if (spec_.kind == SocketKind::kTcp && !is_serving()) group_->shut_out(number);
  fd_.reset();
  group_->left(number);  // udp leaves with its last fd: the model follows the close
}

bool ListenSocket::has_address_of(const SocketSpec& spec) const {
  // As configured (port 0 matches port 0), or as bound (the port the kernel
  // chose for a configured port 0 matches a config that now names it).
  SocketAddress wanted = spec.socket_address();
  return wanted == spec_.socket_address() || wanted == bound_;
}

Status ListenSocket::update(const SocketSpec& spec) {
  if (Status s = check_fixed_options(spec, spec_); !s) return s;
  if (spec.kind != SocketKind::kUdp && listen(fd_.get(), spec.backlog.value_or(INT_MAX)) != 0) {
    return sys_error(fmt::format("{}: cannot change the backlog of {}", spec.name, spec.address()));
  }
  if (Status s = apply_nonblocking(fd_.get(), spec); !s) return s;
  if (inode_ != 0 && spec.mode && spec.mode != spec_.mode &&
      chmod(path_.c_str(), *spec.mode) != 0) {
    return sys_error(fmt::format("{}: cannot chmod {} to {:o}", spec.name, path_, *spec.mode));
  }
  spec_ = spec;
  return {};
}

std::string ListenSocket::backlog_note() const {
  if (spec_.kind != SocketKind::kTcp) return {};
  // On a listening socket, tcpi_sacked is the accept queue's limit.
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd_.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      info.tcpi_state != TCP_LISTEN) {
    return {};
  }
  // What listen() made of baton's backlog: clamped to net.core.somaxconn,
  // read once (status is built on every change; baton stays in its netns).
  static const int64_t somaxconn = [] {
    int64_t value = INT_MAX;
    if (auto max = read_file_head("/proc/sys/net/core/somaxconn", "somaxconn", 32)) {
      const std::string& text = max->text;
      std::from_chars(text.data(), text.data() + text.size(), value);
    }
    return value;
  }();
  int64_t wanted = std::min<int64_t>(spec_.backlog.value_or(INT_MAX), somaxconn);
  if (static_cast<int64_t>(info.tcpi_sacked) == wanted) return {};
  return fmt::format(
      "the app changed its backlog to {} (baton's: {}, set again for the next "
      "generation)",
      info.tcpi_sacked, wanted);
}

bool ListenSocket::is_serving() const {
  return group_ && group_->routing().serving == fd();
}

Status ListenSocket::take_public() {
  if (!group_ || !shared_reason_.empty() || is_serving()) return {};
  if (!group_->contains(fd())) {
    return error(fmt::format("{}: the listener on {} was taken out of its group for a newer one",
                             spec_.name, bound_address_));
  }
  if (spec_.kind == SocketKind::kUnix) {
    // Atomic for every later connect(); the socket that had the public path
    // keeps its queue, reachable no more.
    if (rename(path_.c_str(), spec_.path.c_str()) != 0) {
      return sys_error(fmt::format("{}: cannot rename {} over {}", spec_.name, path_, spec_.path));
    }
    path_ = spec_.path;
  }
  if (Status s = group_->route({fd(), -1}); !s) {
    return Error{fmt::format("{}: cannot switch {} to the new listener: {}", spec_.name,
                             bound_address_, s.error().message),
                 s.error().sys_errno};
  }
  return {};
}

namespace {

/// Whether a probe from 127.0.0.2 can reach a tcp listener bound to `a`, and
/// at which address: a 127.x address itself; 127.0.0.1 for 0.0.0.0, and for
/// "::" unless v6only (v4-mapped connections reach a dual-stack socket).
std::optional<SocketAddress> loopback_target(const SocketAddress& a, bool v6only) {
  bool any = std::all_of(a.ip.begin(), a.ip.end(), [](uint8_t b) { return b == 0; });
  if (a.family == AF_INET && a.ip[0] == 127) return a;
  if (!any || (a.family == AF_INET6 && v6only)) return std::nullopt;
  SocketAddress target;
  target.kind = SocketKind::kTcp;
  target.family = AF_INET;
  target.ip = {127, 0, 0, 1};
  target.port = a.port;
  return target;
}

}  // namespace

Result<ProbeTarget> ListenSocket::probe_target() const {
  if (spec_.kind == SocketKind::kUdp) return error(spec_.name + ": udp cannot be probed");
  if (!shared_reason_.empty()) {
    return error(fmt::format("{}: shared: {}", spec_.name, shared_reason_));
  }
  // Probes reach the probed member (else the serving one); a unix path
  // reaches its own listener, and the public path the serving one.
  int reached = spec_.kind == SocketKind::kUnix && is_serving() ? fd() : group_->probe_target();
  if (reached != fd()) {
    return error(fmt::format("{}: probes to {} reach another generation's listener now", spec_.name,
                             bound_address_));
  }
  if (spec_.kind == SocketKind::kUnix) {
    SocketAddress target = bound_;
    target.path = path_;
    return ProbeTarget{std::move(target), ""};
  }
  std::optional<SocketAddress> target = loopback_target(bound_, spec_.v6only);
  if (!target) {
    return error(
        fmt::format("{}: {} is not reachable from {}: probes need a 127.x, 0.0.0.0 or dual-stack "
                    ":: listener",
                    spec_.name, bound_address_, kProbeSource));
  }
  return ProbeTarget{*target, kProbeSource};
}

}  // namespace baton

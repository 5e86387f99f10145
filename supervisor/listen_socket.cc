// Binding listening sockets: TCP v4/v6, UDP and unix stream (path or abstract).
#include "listen_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "unix_address.h"

namespace baton {
namespace {

/// An IP socket address.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

SockAddr inet_address(const SocketSpec& spec) {
  SockAddr a;
  if (spec.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(spec.port);
    inet_pton(AF_INET6, spec.host.c_str(), &in6->sin6_addr);
    a.length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(spec.port);
    inet_pton(AF_INET, spec.host.c_str(), &in4->sin_addr);
    a.length = sizeof(sockaddr_in);
  }
  return a;
}

Result<UnixAddress> unix_address(const SocketSpec& spec) {
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

Status set_inet_options(int fd, const SocketSpec& spec) {
  if (spec.kind == SocketKind::kTcp) {
    // Lets baton rebind right after a previous run left TIME_WAIT entries.
    if (auto s = set_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, spec, "SO_REUSEADDR"); !s) return s;
  }
  if (spec.family == AF_INET6) {
    if (auto s = set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, spec.v6only, spec, "IPV6_V6ONLY"); !s) {
      return s;
    }
  }
  if (spec.reuseport) return set_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, spec, "SO_REUSEPORT");
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
  auto a = unix_address(spec);
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
  auto a = unix_address(spec);
  if (!a) return Error{fmt::format("{}: cannot bind: {}", spec.name, a.error().message)};
  mode_t old_mask = spec.mode ? umask(0077) : 0;
  int rc = ::bind(fd, a->get(), a->length);
  int err = errno;
  if (spec.mode) umask(old_mask);
  if (rc != 0) return sys_error(fmt::format("{}: cannot bind {}", spec.name, spec.path), err);
  if (spec.mode && chmod(spec.path.c_str(), *spec.mode) != 0) {
    return sys_error(fmt::format("{}: cannot chmod {} to {:o}", spec.name, spec.path, *spec.mode));
  }
  return {};
}

}  // namespace

Result<ListenSocket> ListenSocket::bind(const SocketSpec& spec) {
  int family = spec.kind == SocketKind::kUnix ? AF_UNIX : spec.family;
  int type = spec.kind == SocketKind::kUdp ? SOCK_DGRAM : SOCK_STREAM;
  UniqueFd fd(socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error(fmt::format("{}: cannot create socket", spec.name));

  ListenSocket sock;
  if (spec.kind == SocketKind::kUnix && !spec.abstract) {
    if (auto s = bind_unix_path(fd.get(), spec); !s) return s.error();
    struct stat st;
    if (stat(spec.path.c_str(), &st) == 0) {
      sock.inode_ = st.st_ino;
      sock.device_ = st.st_dev;
    }
  } else if (spec.kind == SocketKind::kUnix) {
    auto a = unix_address(spec);
    if (!a) return Error{fmt::format("{}: cannot bind: {}", spec.name, a.error().message)};
    if (::bind(fd.get(), a->get(), a->length) != 0) {
      return sys_error(fmt::format("{}: cannot bind {}", spec.name, spec.address()));
    }
  } else {
    if (auto s = set_inet_options(fd.get(), spec); !s) return s.error();
    SockAddr a = inet_address(spec);
    if (::bind(fd.get(), a.get(), a.length) != 0) {
      return sys_error(fmt::format("{}: cannot bind {}", spec.name, spec.address()));
    }
  }
  // The kernel clamps the backlog to net.core.somaxconn, so INT_MAX asks for
  // the system maximum.
  if (type == SOCK_STREAM && listen(fd.get(), spec.backlog.value_or(INT_MAX)) != 0) {
    return sys_error(fmt::format("{}: cannot listen on {}", spec.name, spec.address()));
  }
  sock.spec_ = spec;
  sock.set_bound(bound_address_of(fd.get(), spec));
  sock.fd_ = std::move(fd);
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
  // Not bound by baton: its file (if any) belongs to whoever created it.
  ListenSocket sock;
  sock.spec_ = spec;
  sock.set_bound(bound_address_of(fd.get(), spec));
  sock.fd_ = std::move(fd);
  return sock;
}

void ListenSocket::set_bound(SocketAddress bound) {
  bound_ = std::move(bound);
  bound_address_ = bound_.to_string();
}

ListenSocket::~ListenSocket() {
  if (fd_.valid() && on_close) on_close(*this);
  if (!fd_.valid() || inode_ == 0) return;
  struct stat st;
  if (stat(spec_.path.c_str(), &st) == 0 && st.st_ino == inode_ && st.st_dev == device_) {
    unlink(spec_.path.c_str());
  }
}

bool ListenSocket::has_address_of(const SocketSpec& spec) const {
  // As configured (port 0 matches port 0), or as bound (the port the kernel
  // chose for a configured port 0 matches a config that now names it).
  SocketAddress wanted = spec.socket_address();
  return wanted == spec_.socket_address() || wanted == bound_;
}

Status ListenSocket::update(const SocketSpec& spec) {
  if (spec.v6only != spec_.v6only || spec.reuseport != spec_.reuseport) {
    return error(
        fmt::format("{}: v6only and reuseport cannot change on a bound socket ({}); "
                    "restart baton to apply them",
                    spec.name, spec.address()));
  }
  if (spec.kind != SocketKind::kUdp && spec.backlog != spec_.backlog &&
      listen(fd_.get(), spec.backlog.value_or(INT_MAX)) != 0) {
    return sys_error(fmt::format("{}: cannot change the backlog of {}", spec.name, spec.address()));
  }
  if (inode_ != 0 && spec.mode && spec.mode != spec_.mode &&
      chmod(spec.path.c_str(), *spec.mode) != 0) {
    return sys_error(fmt::format("{}: cannot chmod {} to {:o}", spec.name, spec.path, *spec.mode));
  }
  spec_ = spec;
  return {};
}

Result<ProbeTarget> ListenSocket::probe_target() const {
  return error(fmt::format("{}: {}", spec_.name, shared_reason_));
}

}  // namespace baton

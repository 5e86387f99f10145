/* bind() and listen(): a bind to the address of an inherited socket puts that
 * socket at the app's fd (dup3, keeping the app's CLOEXEC), listen() on it is a
 * no-op, and a bind to an inherited port that matches nothing is refused. The
 * app's unlink() of an inherited unix socket's path is ignored. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

/* The sockaddr behind glibc's __CONST_SOCKADDR_ARG, a pointer or a transparent
 * union of pointers depending on the feature macros. */
#define SA_PTR(arg) (*(const struct sockaddr* const*)&(arg))

int shim_normalize_path(const char* path, size_t len, char* out, size_t cap) {
  char joined[2 * SHIM_PATH_MAX];
  size_t n = 0;
  if (len == 0 || cap < 2) return -1;
  if (path[0] != '/') {
    if (!getcwd(joined, SHIM_PATH_MAX)) return -1;
    n = strlen(joined);
    joined[n++] = '/';
  }
  if (n + len >= sizeof joined) return -1;
  memcpy(joined + n, path, len);
  joined[n + len] = '\0';
  size_t o = 1;
  out[0] = '/';
  for (const char* p = joined; *p;) {
    while (*p == '/') ++p;
    const char* start = p;
    while (*p && *p != '/') ++p;
    size_t c = (size_t)(p - start);
    if (c == 0 || (c == 1 && start[0] == '.')) continue;
    if (c == 2 && start[0] == '.' && start[1] == '.') {
      while (o > 1 && out[o - 1] != '/') --o;
      if (o > 1) --o;
      continue;
    }
    if (o + 1 + c >= cap) return -1;
    if (o > 1) out[o++] = '/';
    memcpy(out + o, start, c);
    o += c;
  }
  out[o] = '\0';
  return 0;
}

void shim_format_addr(const struct sockaddr* sa, socklen_t len, char* out, size_t cap) {
  char host[INET6_ADDRSTRLEN] = "?";
  out[0] = '\0';
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in* in = (const struct sockaddr_in*)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(out, cap, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(out, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
    const struct sockaddr_un* un = (const struct sockaddr_un*)sa;
    size_t n = len - offsetof(struct sockaddr_un, sun_path);
    if (un->sun_path[0] == '\0') {
      snprintf(out, cap, "@%.*s", (int)(n - 1), un->sun_path + 1);
    } else {
      snprintf(out, cap, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    }
  } else {
    snprintf(out, cap, "(address family %d)", sa->sa_family);
  }
}

enum relation { UNRELATED, CONFLICT, MATCH_DUAL_STACK, MATCH_WILDCARD, MATCH_EXACT };

static int is_wildcard(const struct sockaddr* sa) {
  if (sa->sa_family == AF_INET)
    return ((const struct sockaddr_in*)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6*)sa)->sin6_addr);
}

static int same_host(const struct sockaddr* a, const struct sockaddr* b) {
  if (a->sa_family == AF_INET)
    return ((const struct sockaddr_in*)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in*)b)->sin_addr.s_addr;
  return memcmp(&((const struct sockaddr_in6*)a)->sin6_addr,
                &((const struct sockaddr_in6*)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static unsigned port_of(const struct sockaddr* sa) {
  return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in*)sa)->sin_port
                                        : ((const struct sockaddr_in6*)sa)->sin6_port);
}

/* Unix addresses: abstract names byte for byte, paths after normalisation. */
static enum relation relate_unix(const struct shim_inherited* s, const struct sockaddr_un* un,
                                 socklen_t len) {
  size_t base = offsetof(struct sockaddr_un, sun_path);
  if (len <= base || s->addr_len <= base) return UNRELATED;
  const struct sockaddr_un* mine = (const struct sockaddr_un*)&s->addr;
  if (un->sun_path[0] == '\0' || mine->sun_path[0] == '\0') {
    return len == s->addr_len && memcmp(un->sun_path, mine->sun_path, len - base) == 0 ? MATCH_EXACT
                                                                                       : UNRELATED;
  }
  char path[SHIM_PATH_MAX];
  size_t n = strnlen(un->sun_path, len - base);
  if (!s->path[0] || shim_normalize_path(un->sun_path, n, path, sizeof path) != 0) return UNRELATED;
  return strcmp(path, s->path) == 0 ? MATCH_EXACT : UNRELATED;
}

/* How an app's bind of (type, protocol, sa) relates to inherited socket s. */
static enum relation relate(const struct shim_inherited* s, int type, int protocol,
                            const struct sockaddr* sa, socklen_t len) {
  if (!s->type || s->type != type || s->protocol != protocol || !s->addr_len) return UNRELATED;
  if (sa->sa_family == AF_UNIX || s->family == AF_UNIX) {
    if (sa->sa_family != s->family) return UNRELATED;
    return relate_unix(s, (const struct sockaddr_un*)sa, len);
  }
  const struct sockaddr* mine = (const struct sockaddr*)&s->addr;
  if (port_of(sa) != port_of(mine)) return UNRELATED;
  if (sa->sa_family == s->family) {
    if (same_host(sa, mine)) return MATCH_EXACT;
    return is_wildcard(mine) ? MATCH_WILDCARD : CONFLICT;
  }
  if (sa->sa_family == AF_INET && s->family == AF_INET6 && is_wildcard(mine) && !s->v6only)
    return MATCH_DUAL_STACK;
  return CONFLICT;
}

static int valid_ip_len(const struct sockaddr* sa, socklen_t len) {
  if (sa->sa_family == AF_INET) return len >= sizeof(struct sockaddr_in);
  if (sa->sa_family == AF_INET6) return len >= sizeof(struct sockaddr_in6);
  return sa->sa_family == AF_UNIX;
}

/* Puts inherited socket `index` at the app's `fd`. */
static int claim(int fd, int index, int dual_stack) {
  int fd_flags = REAL(fcntl)(fd, F_GETFD);
  int fl_flags = REAL(fcntl)(fd, F_GETFL);
  if (fd_flags < 0 || fl_flags < 0) return -1;
  int source = shim.sock[index].stash_fd;
  uint8_t flags =
      FD_CLAIMED | (fl_flags & O_NONBLOCK ? FD_WANT_NONBLOCK : 0) | (dual_stack ? FD_APP_V4 : 0);
  if (atomic_load(&shim.draining)) {
    /* A worker binding after the drain began gets the inert socket at once. */
    source = shim.inert[shim.sock[index].type == SOCK_DGRAM][(flags & FD_WANT_NONBLOCK) != 0];
    flags |= FD_DRAINED;
  }
  if (REAL(dup3)(source, fd, fd_flags & FD_CLOEXEC ? O_CLOEXEC : 0) < 0) return -1;
  atomic_store(&shim_fd_claim[fd], (uint8_t)index);
  atomic_store(&shim_fd[fd], flags);
  int seen = atomic_load(&shim.max_claimed_fd);
  while (fd > seen && !atomic_compare_exchange_weak(&shim.max_claimed_fd, &seen, fd)) {
  }
  atomic_fetch_or(&shim.claimed, UINT64_C(1) << index);
  shim_check_ready();
  return 0;
}

#define REFUSED_HEAD BATON_SHIM_NOTIFY "=" BATON_SHIM_REFUSED_BIND "\nSTATUS="

static void refuse(const struct sockaddr* sa, socklen_t len) {
  char addr[SHIM_PATH_MAX];
  shim_format_addr(sa, len, addr, sizeof addr);
  struct shim_msg m = {.len = 0};
  shim_msg_str(&m, REFUSED_HEAD "baton-shim: refused bind to ");
  shim_msg_str(&m, addr);
  shim_msg_str(&m, ": no inherited socket matches");
  shim_notify_send(&m);
  shim_log(m.text + sizeof REFUSED_HEAD - 1); /* the STATUS= text */
}

SHIM_EXPORT int bind(int fd, __CONST_SOCKADDR_ARG addr_arg, socklen_t len) {
  const struct sockaddr* sa = SA_PTR(addr_arg);
  if (!shim.active || !sa || len < sizeof(sa_family_t) || (unsigned)fd >= SHIM_MAX_FD ||
      !valid_ip_len(sa, len))
    return REAL(bind)(fd, sa, len);
  int saved = errno;
  if (shim_fd_flags(fd) & (FD_CLAIMED | FD_STASH)) {
    errno = EINVAL; /* already bound, as the kernel would say */
    return -1;
  }
  int type = 0, domain = 0, protocol = 0;
  socklen_t l = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &(socklen_t){sizeof domain}) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &(socklen_t){sizeof protocol}) != 0 ||
      domain != sa->sa_family) {
    errno = saved;
    return REAL(bind)(fd, sa, len);
  }
  enum relation best = UNRELATED;
  int best_index = -1, conflict = 0;
  for (int i = 0; i < shim.count; ++i) {
    enum relation r = relate(&shim.sock[i], type, protocol, sa, len);
    if (r == CONFLICT) conflict = 1;
    if (r > best) {
      best = r;
      best_index = i;
    }
  }
  if (best >= MATCH_DUAL_STACK) {
    if (claim(fd, best_index, best == MATCH_DUAL_STACK) != 0) return -1;
    errno = saved;
    return 0;
  }
  if (conflict) {
    refuse(sa, len);
    errno = EADDRINUSE;
    return -1;
  }
  errno = saved;
  return REAL(bind)(fd, sa, len);
}

SHIM_EXPORT int listen(int fd, int backlog) {
  if (shim.active && (shim_fd_flags(fd) & FD_CLAIMED)) return 0;
  return REAL(listen)(fd, backlog);
}

/* Whether `path` names an inherited unix socket's file. */
static int is_inherited_path(const char* path) {
  char norm[SHIM_PATH_MAX];
  if (!shim.active || !path || !path[0]) return 0;
  int has_path = 0;
  for (int i = 0; i < shim.count && !has_path; ++i) has_path = shim.sock[i].path[0] != '\0';
  if (!has_path) return 0;
  int saved = errno;
  int r = shim_normalize_path(path, strlen(path), norm, sizeof norm);
  errno = saved;
  if (r != 0) return 0;
  for (int i = 0; i < shim.count; ++i) {
    if (shim.sock[i].path[0] && strcmp(norm, shim.sock[i].path) == 0) return 1;
  }
  return 0;
}

/* Apps unlink their socket path before bind and at exit; baton's socket file
 * must survive both, or the next generation could not be reached by it. */
SHIM_EXPORT int unlink(const char* path) {
  return is_inherited_path(path) ? 0 : REAL(unlink)(path);
}

SHIM_EXPORT int unlinkat(int dirfd, const char* path, int flags) {
  if ((path[0] == '/' || dirfd == AT_FDCWD) && !(flags & AT_REMOVEDIR) && is_inherited_path(path))
    return 0;
  return REAL(unlinkat)(dirfd, path, flags);
}

SHIM_EXPORT int remove(const char* path) {
  return is_inherited_path(path) ? 0 : REAL(remove)(path);
}

/* Readiness: READY=1 goes to baton once every inherited socket has been
 * claimed by a bind() and the app has started accepting on a claimed fd (an
 * accept call, or a poll/select/epoll registration or receive that includes
 * it). The scans in poll/select stop as soon as this process is ready. The
 * receive wrappers also honour a claimed datagram socket's wanted O_NONBLOCK. */
#include <errno.h>

#include "shim.h"

void shim_check_ready(void) {
  if (!shim.active || atomic_load(&shim.ready_local) || !atomic_load(&shim.accepting)) return;
  uint64_t claimed = atomic_load(&shim.claimed) & shim.all_mask;
  if (claimed != shim.all_mask || atomic_load(&shim.draining)) return;
  if (atomic_exchange(&shim.ready_local, 1)) return;
  if (atomic_exchange(&shim.shared->ready_sent, 1)) return; /* a sibling got there first */
  struct shim_msg m = {.len = 0};
  shim_msg_str(&m, "READY=1\nSTATUS=baton-shim: ready, ");
  shim_msg_uint(&m, (unsigned long)__builtin_popcountll(claimed));
  shim_msg_str(&m, " sockets taken over");
  shim_notify_send(&m);
}

void shim_mark_accepting(void) {
  if (atomic_load_explicit(&shim.ready_local, memory_order_relaxed)) return;
  atomic_store(&shim.accepting, 1);
  shim_check_ready();
}

static inline int scanning(void) {
  return shim.active && !atomic_load_explicit(&shim.ready_local, memory_order_relaxed);
}

static void scan_pollfds(const struct pollfd* fds, nfds_t n) {
  int saved = errno;
  for (nfds_t i = 0; fds && i < n; ++i) {
    if (fds[i].fd >= 0 && (shim_fd_flags(fds[i].fd) & FD_CLAIMED)) {
      shim_mark_accepting();
      break;
    }
  }
  errno = saved;
}

static void scan_fdset(int nfds, const fd_set* set) {
  if (!set) return;
  int saved = errno;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
    if (FD_ISSET(fd, set) && (shim_fd_flags(fd) & FD_CLAIMED)) {
      shim_mark_accepting();
      break;
    }
  }
  errno = saved;
}

/* glibc 2.36 declares poll's array write_only, which it is not: the app
 * fills it in, and it is read here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
SHIM_EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  if (scanning()) scan_pollfds(fds, n);
  return REAL(poll)(fds, n, timeout);
}

SHIM_EXPORT int __poll_chk(struct pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (scanning()) scan_pollfds(fds, n);
  return REAL(__poll_chk)(fds, n, timeout, fdslen);
}

SHIM_EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                      const sigset_t* mask) {
  if (scanning()) scan_pollfds(fds, n);
  return REAL(ppoll)(fds, n, timeout, mask);
}

SHIM_EXPORT int __ppoll_chk(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                            const sigset_t* mask, size_t fdslen) {
  if (scanning()) scan_pollfds(fds, n);
  return REAL(__ppoll_chk)(fds, n, timeout, mask, fdslen);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

SHIM_EXPORT int select(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds,
                       struct timeval* timeout) {
  if (scanning()) {
    scan_fdset(nfds, readfds);
    scan_fdset(nfds, exceptfds);
  }
  return REAL(select)(nfds, readfds, writefds, exceptfds, timeout);
}

SHIM_EXPORT int pselect(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds,
                        const struct timespec* timeout, const sigset_t* mask) {
  if (scanning()) {
    scan_fdset(nfds, readfds);
    scan_fdset(nfds, exceptfds);
  }
  return REAL(pselect)(nfds, readfds, writefds, exceptfds, timeout, mask);
}

/* Receiving on a claimed (datagram) socket counts as accepting; the app's
 * wanted O_NONBLOCK becomes MSG_DONTWAIT, since the socket itself is shared. */
static int receive_flags(int fd, int flags) {
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!(f & FD_CLAIMED)) return flags;
  if (scanning()) shim_mark_accepting();
  return f & FD_WANT_NONBLOCK ? flags | MSG_DONTWAIT : flags;
}

SHIM_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  return REAL(recv)(fd, buf, n, receive_flags(fd, flags));
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  return REAL(__recv_chk)(fd, buf, n, buflen, receive_flags(fd, flags));
}

SHIM_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, __SOCKADDR_ARG addr_arg,
                             socklen_t* addr_len) {
  struct sockaddr* addr = *(struct sockaddr* const*)&addr_arg;
  return REAL(recvfrom)(fd, buf, n, receive_flags(fd, flags), addr, addr_len);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                                   struct sockaddr* addr, socklen_t* addr_len) {
  return REAL(__recvfrom_chk)(fd, buf, n, buflen, receive_flags(fd, flags), addr, addr_len);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  return REAL(recvmsg)(fd, msg, receive_flags(fd, flags));
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr* msgs, unsigned n, int flags,
                         struct timespec* timeout) {
  return REAL(recvmmsg)(fd, msgs, n, receive_flags(fd, flags), timeout);
}

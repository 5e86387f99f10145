/* The fd table: what the shim knows about each of the app's fds (claimed,
 * wanted O_NONBLOCK, counted connection), kept right across close, dup*,
 * fcntl, ioctl(FIONBIO), close_range, closefrom, fclose and the raw
 * system calls for them (syscall.c). These wrappers are
 * syscalls plus atomics (close and dup2 are called from signal handlers), and
 * the shared socket's file status flags are never changed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

/* Drops what was recorded about `fd` (flags `f`). `del`: remove a claimed
 * fd's epoll registrations first, as the kernel would when its last copy
 * closed. Returns 1 when a counted connection went away. */
static int forget(int fd, uint8_t f, int del) {
  if (f & FD_CLAIMED) shim_epoll_forget_fd(fd, del);
  if (f & FD_EPOLL) shim_epoll_forget_epfd(fd);
  if (f & FD_CONN) {
    atomic_fetch_sub(&shim.conns, 1);
    return 1;
  }
  return 0;
}

/* `fd` was just created by the kernel: whatever the table says about that
 * number is stale (it was closed behind our back, e.g. by a raw syscall). */
void shim_fd_reset_new(int fd) {
  if ((unsigned)fd >= SHIM_MAX_FD || !atomic_load_explicit(&shim_fd[fd], memory_order_relaxed))
    return;
  if (forget(fd, atomic_exchange(&shim_fd[fd], 0), 0)) shim_maybe_finish();
}

/* `fd` is a connection just accepted on a claimed fd with `listener_flags`.
 * Counted before anything stale is forgotten, so the count never touches 0
 * in between (which could end a drain under a live connection). */
void shim_fd_set_conn(int fd, uint8_t listener_flags) {
  if ((unsigned)fd >= SHIM_MAX_FD) return;
  atomic_fetch_add(&shim.conns, 1);
  uint8_t f = FD_CONN | (listener_flags & FD_APP_V4 ? FD_CONN_V4 : 0);
  uint8_t prev = atomic_exchange(&shim_fd[fd], f);
  if (prev && forget(fd, prev, 0)) shim_maybe_finish();
}

/* `to` became a copy of `from` (dup, dup2, F_DUPFD): it inherits the claim or
 * the connection, and whatever `to` was before is forgotten. */
void shim_fd_copy(int from, int to) {
  if ((unsigned)to >= SHIM_MAX_FD) return;
  uint8_t f = shim_fd_flags(from) & FD_COPY_MASK;
  if (f & FD_CLAIMED) {
    atomic_store(&shim_fd_claim[to], atomic_load(&shim_fd_claim[(unsigned)from]));
    int seen = atomic_load(&shim.max_claimed_fd);
    while (to > seen && !atomic_compare_exchange_weak(&shim.max_claimed_fd, &seen, to)) {
    }
  }
  if (f & FD_CONN) atomic_fetch_add(&shim.conns, 1);
  uint8_t prev = atomic_exchange(&shim_fd[to], f);
  if (prev && forget(to, prev, 0)) shim_maybe_finish();
}

/* close(), and syscall(SYS_close) when `raw`: the raw system call is kept
 * for it, as it is no cancellation point (libuv closes every fd that way). */
int shim_close(int fd, int raw) {
  if (!shim.active) return raw ? (int)SHIM_SYSCALL(SYS_close, fd) : REAL(close)(fd);
  uint8_t f = shim_fd_flags(fd);
  if (f & FD_STASH) {
    errno = EBADF;
    return -1;
  }
  int saved = errno;
  int gone = f ? forget(fd, atomic_exchange(&shim_fd[fd], 0), 1) : 0;
  errno = saved;
  int r = raw ? (int)SHIM_SYSCALL(SYS_close, fd) : REAL(close)(fd);
  if (gone) shim_maybe_finish();
  return r;
}

SHIM_EXPORT int close(int fd) {
  return shim_close(fd, 0);
}

SHIM_EXPORT int fclose(FILE* stream) {
  if (!shim.active || !stream) return REAL(fclose)(stream);
  int fd = fileno(stream);
  uint8_t f = fd >= 0 ? shim_fd_flags(fd) : 0;
  int saved = errno;
  int gone = f && !(f & FD_STASH) ? forget(fd, atomic_exchange(&shim_fd[fd], 0), 1) : 0;
  errno = saved;
  int r = REAL(fclose)(stream);
  if (gone) shim_maybe_finish();
  return r;
}

SHIM_EXPORT int dup(int fd) {
  int r = REAL(dup)(fd);
  if (shim.active && r >= 0 && shim_fd_flags(fd)) {
    int saved = errno;
    shim_fd_copy(fd, r);
    errno = saved;
  }
  return r;
}

/* dup2/dup3 close `newfd` implicitly: a claimed one leaves its epoll sets. */
static int dup_onto(int oldfd, int newfd, int flags, int three) {
  if (!shim.active) return three ? REAL(dup3)(oldfd, newfd, flags) : REAL(dup2)(oldfd, newfd);
  if (shim_is_stash(newfd)) {
    errno = EBADF;
    return -1;
  }
  if (oldfd != newfd && (shim_fd_flags(newfd) & FD_CLAIMED)) {
    int saved = errno;
    shim_epoll_forget_fd(newfd, 1);
    errno = saved;
  }
  int r = three ? REAL(dup3)(oldfd, newfd, flags) : REAL(dup2)(oldfd, newfd);
  if (r >= 0 && oldfd != newfd && (shim_fd_flags(oldfd) || shim_fd_flags(newfd))) {
    int saved = errno;
    shim_fd_copy(oldfd, newfd);
    errno = saved;
  }
  return r;
}

SHIM_EXPORT int dup2(int oldfd, int newfd) {
  return dup_onto(oldfd, newfd, 0, 0);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags) {
  return dup_onto(oldfd, newfd, flags, 1);
}

/* fcntl on a claimed fd: F_SETFL only records the O_NONBLOCK the app wants
 * (the shared socket stays as baton made it), F_GETFL reports it back. */
static int shim_fcntl(int (*real)(int, int, ...), int fd, int cmd, void* arg) {
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!f || (f & FD_STASH)) return real(fd, cmd, arg);
  if ((f & FD_CLAIMED) && cmd == F_SETFL) {
    if ((int)(intptr_t)arg & O_NONBLOCK)
      atomic_fetch_or(&shim_fd[fd], FD_WANT_NONBLOCK);
    else
      atomic_fetch_and(&shim_fd[fd], (uint8_t)~FD_WANT_NONBLOCK);
    return 0;
  }
  int r = real(fd, cmd, arg);
  if (r < 0) return r;
  if ((f & FD_CLAIMED) && cmd == F_GETFL) {
    r &= ~O_NONBLOCK;
    if (shim_fd_flags(fd) & FD_WANT_NONBLOCK) r |= O_NONBLOCK;
  } else if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    int saved = errno;
    shim_fd_copy(fd, r);
    errno = saved;
  }
  return r;
}

SHIM_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return shim_fcntl(REAL(fcntl), fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return shim_fcntl(shim_real.fcntl64 ? shim_real.fcntl64 : REAL(fcntl), fd, cmd, arg);
}

SHIM_EXPORT int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (request == FIONBIO && shim.active && (shim_fd_flags(fd) & FD_CLAIMED)) {
    if (!arg) {
      errno = EFAULT;
      return -1;
    }
    if (*(const int*)arg)
      atomic_fetch_or(&shim_fd[fd], FD_WANT_NONBLOCK);
    else
      atomic_fetch_and(&shim_fd[fd], (uint8_t)~FD_WANT_NONBLOCK);
    return 0;
  }
  return REAL(ioctl)(fd, request, arg);
}

SHIM_EXPORT int socket(int domain, int type, int protocol) {
  int r = REAL(socket)(domain, type, protocol);
  if (shim.active && r >= 0) {
    int saved = errno;
    shim_fd_reset_new(r);
    errno = saved;
  }
  return r;
}

/* close_range() without the shim's own fds: the range is closed in pieces
 * around them, and the table forgets every fd closed. */
static int close_pieces(unsigned first, unsigned last) {
  int gone = 0;
  unsigned top = last < SHIM_MAX_FD - 1 ? last : SHIM_MAX_FD - 1;
  for (unsigned fd = first; fd <= top && first < SHIM_MAX_FD; ++fd) {
    uint8_t f = atomic_load_explicit(&shim_fd[fd], memory_order_relaxed);
    if (f && !(f & FD_STASH)) gone |= forget((int)fd, atomic_exchange(&shim_fd[fd], 0), 1);
  }
  int r = 0;
  unsigned from = first;
  for (unsigned fd = (unsigned)shim.stash_lo; fd <= (unsigned)shim.stash_hi; ++fd) {
    if (fd < first || fd > last || !shim_is_stash((int)fd)) continue;
    if (fd > from && REAL(close_range)(from, fd - 1, 0) != 0) r = -1;
    from = fd + 1;
  }
  if (from <= last && REAL(close_range)(from, last, 0) != 0) r = -1;
  if (gone) shim_maybe_finish();
  return r;
}

SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  if (!shim.active || (flags & CLOSE_RANGE_CLOEXEC) || first > last)
    return REAL(close_range)(first, last, flags);
  if (flags & CLOSE_RANGE_UNSHARE) {
    /* Unshare first (closing nothing), then close as usual. */
    if (REAL(close_range)(~0U, ~0U, CLOSE_RANGE_UNSHARE) != 0) return -1;
  }
  int saved = errno;
  int r = close_pieces(first, last);
  if (r == 0) errno = saved;
  return r;
}

SHIM_EXPORT void closefrom(int lowfd) {
  if (!shim.active || lowfd < 0) {
    REAL(closefrom)(lowfd);
    return;
  }
  int saved = errno;
  if (close_pieces((unsigned)lowfd, ~0U) != 0) {
    /* No close_range (old kernel): close the pieces below and above. */
    for (int fd = lowfd; fd < shim.stash_lo; ++fd) close(fd);
    REAL(closefrom)(shim.stash_hi + 1 > lowfd ? shim.stash_hi + 1 : lowfd);
  }
  errno = saved;
}

/* syscall(): the raw system calls that bypass libc's wrappers. libuv (node)
 * closes every fd with syscall(SYS_close) and receives UDP batches with
 * syscall(SYS_recvmmsg); others may accept, dup or fcntl that way. Those the
 * shim keeps its tables by go through its own wrappers, so a connection
 * closed with a raw close is no longer counted, a claimed fd closed that way
 * is forgotten (the drain would otherwise put an inert socket over whatever
 * the app opened at that number next), and a raw F_SETFL only records the
 * wanted O_NONBLOCK. Every other number goes straight to libc's syscall(). */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

/* syscall() takes up to six arguments after the number; like libc's, this
 * reads six whatever the caller passed. */
SHIM_EXPORT long syscall(long n, ...) {
  va_list ap;
  va_start(ap, n);
  long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
  long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
  va_end(ap);
  if (shim.active) {
    int fd = (int)a0;
    switch (n) {
      case SYS_close:
        return shim_close(fd, 1);
      case SYS_close_range:
        return close_range((unsigned)a0, (unsigned)a1, (int)a2);
      case SYS_dup:
        return dup(fd);
#ifdef SYS_dup2
      case SYS_dup2:
        return dup2(fd, (int)a1);
#endif
      case SYS_dup3:
        return dup3(fd, (int)a1, (int)a2);
      case SYS_fcntl:
        return fcntl(fd, (int)a1, (void*)a2);
      case SYS_ioctl:
        return ioctl(fd, (unsigned long)a1, (void*)a2);
      case SYS_socket:
        return socket((int)a0, (int)a1, (int)a2);
      case SYS_bind:
        return bind(fd, (const struct sockaddr*)a1, (socklen_t)a2);
      case SYS_listen:
        return listen(fd, (int)a1);
#ifdef SYS_accept
      case SYS_accept:
        return accept(fd, (struct sockaddr*)a1, (socklen_t*)a2);
#endif
      case SYS_accept4:
        return accept4(fd, (struct sockaddr*)a1, (socklen_t*)a2, (int)a3);
      case SYS_epoll_ctl:
        return epoll_ctl((int)a0, (int)a1, (int)a2, (struct epoll_event*)a3);
      case SYS_recvfrom:
        return recvfrom(fd, (void*)a1, (size_t)a2, (int)a3, (struct sockaddr*)a4, (socklen_t*)a5);
      case SYS_recvmsg:
        return recvmsg(fd, (struct msghdr*)a1, (int)a2);
      case SYS_recvmmsg:
        return recvmmsg(fd, (struct mmsghdr*)a1, (unsigned)a2, (int)a3, (struct timespec*)a4);
      default:
        break;
    }
  }
  return SHIM_SYSCALL(n, a0, a1, a2, a3, a4, a5);
}

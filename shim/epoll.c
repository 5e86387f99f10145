/* Which epoll sets each claimed fd was added to (epoll_ctl ADD/MOD/DEL), so
 * that the drain can take the shared socket out of them and put an inert
 * socket in its place with the same events and data: the kernel keys epoll
 * registrations by (fd, open file), so they would outlive a dup2 otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "shim.h"

enum { REG_FREE, REG_BUSY, REG_VALID };

struct registration {
  atomic_int state; /* fields are read only while REG_VALID */
  int epfd;
  int fd;
  uint32_t events;
  epoll_data_t data;
};

static struct registration regs[SHIM_MAX_EPOLL];
static atomic_int regs_used; /* entries at or above this index were never used */

static struct registration* find(int epfd, int fd) {
  int used = atomic_load(&regs_used);
  for (int i = 0; i < used; ++i) {
    struct registration* r = &regs[i];
    if (atomic_load(&r->state) == REG_VALID && r->fd == fd && r->epfd == epfd) return r;
  }
  return NULL;
}

static void store(int epfd, int fd, const struct epoll_event* ev) {
  struct registration* r = find(epfd, fd);
  int expected = REG_VALID;
  if (r && atomic_compare_exchange_strong(&r->state, &expected, REG_BUSY)) {
    r->events = ev->events;
    r->data = ev->data;
    atomic_store(&r->state, REG_VALID);
    return;
  }
  for (int i = 0; i < SHIM_MAX_EPOLL; ++i) {
    expected = REG_FREE;
    if (!atomic_compare_exchange_strong(&regs[i].state, &expected, REG_BUSY)) continue;
    regs[i].epfd = epfd;
    regs[i].fd = fd;
    regs[i].events = ev->events;
    regs[i].data = ev->data;
    int used = atomic_load(&regs_used);
    while (i + 1 > used && !atomic_compare_exchange_weak(&regs_used, &used, i + 1)) {
    }
    atomic_store(&regs[i].state, REG_VALID);
    if ((unsigned)epfd < SHIM_MAX_FD) atomic_fetch_or(&shim_fd[epfd], FD_EPOLL);
    return;
  }
  shim_log("baton-shim: epoll registration table full; the drain may not reach every epoll set");
}

static void drop(struct registration* r) {
  int expected = REG_VALID;
  atomic_compare_exchange_strong(&r->state, &expected, REG_FREE);
}

void shim_epoll_forget_fd(int fd, int del) {
  int used = atomic_load(&regs_used);
  for (int i = 0; i < used; ++i) {
    struct registration* r = &regs[i];
    if (atomic_load(&r->state) != REG_VALID || r->fd != fd) continue;
    if (del) REAL(epoll_ctl)(r->epfd, EPOLL_CTL_DEL, fd, NULL);
    drop(r);
  }
}

void shim_epoll_forget_epfd(int epfd) {
  int used = atomic_load(&regs_used);
  for (int i = 0; i < used; ++i) {
    if (atomic_load(&regs[i].state) == REG_VALID && regs[i].epfd == epfd) drop(&regs[i]);
  }
}

/* Drain, in the signal handler: out of every epoll set, swap, back in. */
void shim_epoll_swap(int fd, int inert) {
  int used = atomic_load(&regs_used);
  for (int i = 0; i < used; ++i) {
    if (atomic_load(&regs[i].state) == REG_VALID && regs[i].fd == fd)
      REAL(epoll_ctl)(regs[i].epfd, EPOLL_CTL_DEL, fd, NULL);
  }
  int fd_flags = REAL(fcntl)(fd, F_GETFD);
  REAL(dup3)(inert, fd, fd_flags >= 0 && (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0);
  for (int i = 0; i < used; ++i) {
    if (atomic_load(&regs[i].state) != REG_VALID || regs[i].fd != fd) continue;
    struct epoll_event ev = {.events = regs[i].events, .data = regs[i].data};
    REAL(epoll_ctl)(regs[i].epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  if (!shim.active || !(shim_fd_flags(fd) & FD_CLAIMED))
    return REAL(epoll_ctl)(epfd, op, fd, event);
  int r = REAL(epoll_ctl)(epfd, op, fd, event);
  if (r != 0) return r;
  int saved = errno;
  if (op == EPOLL_CTL_DEL) {
    struct registration* reg = find(epfd, fd);
    if (reg) drop(reg);
  } else if (event) {
    store(epfd, fd, event);
    shim_mark_accepting();
  }
  errno = saved;
  return 0;
}

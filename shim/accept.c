/* accept() and accept4() on claimed fds. The shared socket is blocking (baton
 * never changes that), so an app that wants non-blocking accepts gets them
 * emulated: poll first, then accept under a 2 ms per-thread timer in case
 * another process took the connection in between. Threads inside accept hold
 * a slot, so the drain can wake them (it arms their timers) and wait for a
 * connection they may still be accepting. Accepted connections are counted. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define SA_OUT(arg) (*(struct sockaddr* const*)&(arg))

enum { SLOT_FREE, SLOT_BUSY, SLOT_KICKING, SLOT_KICKED };

struct slot {
  atomic_int owner; /* 1 while a live thread owns it */
  atomic_int state; /* SLOT_BUSY while the owner is inside accept on a live socket */
  pid_t tid;
  int has_timer;
  timer_t timer;
};

static struct slot slots[SHIM_MAX_THREADS];
static atomic_int slots_used;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int exit_key_ok;

int shim_timer_arm(timer_t timer, long first_ns, long interval_ns) {
  struct itimerspec its = {
      .it_interval = {.tv_sec = interval_ns / 1000000000L, .tv_nsec = interval_ns % 1000000000L},
      .it_value = {.tv_sec = first_ns / 1000000000L, .tv_nsec = first_ns % 1000000000L},
  };
  return timer_settime(timer, 0, &its, NULL);
}

/* A thread that accepted exits: its timer and slot go. */
static void thread_gone(void* unused) {
  (void)unused;
  if (shim_tl.gen != atomic_load(&shim.fork_gen)) return;
  if (shim_tl.has_timer) timer_delete(shim_tl.timer);
  if (shim_tl.slot >= 0) {
    atomic_store(&slots[shim_tl.slot].state, SLOT_FREE);
    atomic_store(&slots[shim_tl.slot].owner, 0);
  }
  shim_tl.gen = 0;
}

static void make_exit_key(void) {
  exit_key_ok = pthread_key_create(&exit_key, thread_gone) == 0;
}

/* Once per thread (and again after fork): a timer that signals this thread
 * with the wake signal, and a slot. Kernel objects only; nothing allocated. */
static void thread_setup(void) {
  unsigned gen = atomic_load(&shim.fork_gen);
  if (shim_tl.gen == gen) return;
  shim_tl.gen = gen;
  shim_tl.slot = -1;
  shim_tl.has_timer = 0;
  pid_t tid = (pid_t)SHIM_SYSCALL(SYS_gettid);
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = shim.wake_sig;
  sev.sigev_value.sival_int = SHIM_WAKE_MAGIC;
  sev._sigev_un._tid = tid;
  shim_tl.has_timer = timer_create(CLOCK_MONOTONIC, &sev, &shim_tl.timer) == 0;
  for (int i = 0; i < SHIM_MAX_THREADS; ++i) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&slots[i].owner, &expected, 1)) continue;
    slots[i].tid = tid;
    slots[i].has_timer = shim_tl.has_timer;
    slots[i].timer = shim_tl.timer;
    atomic_store(&slots[i].state, SLOT_FREE);
    int used = atomic_load(&slots_used);
    while (i + 1 > used && !atomic_compare_exchange_weak(&slots_used, &used, i + 1)) {
    }
    shim_tl.slot = i;
    break;
  }
  pthread_once(&key_once, make_exit_key);
  if (exit_key_ok) pthread_setspecific(exit_key, (void*)1);
}

/* In a forked child only the forking thread exists, and no timer. */
void shim_thread_forked(void) {
  for (int i = 0; i < SHIM_MAX_THREADS; ++i) {
    atomic_store(&slots[i].state, SLOT_FREE);
    atomic_store(&slots[i].owner, 0);
  }
}

static struct slot* slot_enter(void) {
  thread_setup();
  shim_tl.woken = 0;
  if (shim_tl.slot < 0) return NULL;
  struct slot* s = &slots[shim_tl.slot];
  atomic_store(&s->state, SLOT_BUSY);
  return s;
}

/* Leaves the slot; if the drain kicked it, waits for the kick to be complete
 * and stops the timer, so no wake signal reaches the app's own code. */
static void slot_leave(struct slot* s) {
  if (!s) return;
  int expected = SLOT_BUSY;
  if (!atomic_compare_exchange_strong(&s->state, &expected, SLOT_FREE)) {
    for (int i = 0; i < 100000 && atomic_load(&s->state) == SLOT_KICKING; ++i) sched_yield();
    if (s->has_timer) shim_timer_arm(s->timer, 0, 0);
    atomic_store(&s->state, SLOT_FREE);
  }
  if (atomic_load(&shim.draining)) shim_maybe_finish();
}

/* Drain (signal handler): every thread inside accept gets a wake signal now
 * and every 10 ms until it leaves, which also covers a thread that was about
 * to enter the accept system call on the (now inert) fd. */
void shim_kick_accepting_threads(void) {
  int used = atomic_load(&slots_used);
  for (int i = 0; i < used; ++i) {
    struct slot* s = &slots[i];
    int expected = SLOT_BUSY;
    if (!atomic_load(&s->owner) ||
        !atomic_compare_exchange_strong(&s->state, &expected, SLOT_KICKING))
      continue;
    if (s->has_timer) {
      shim_timer_arm(s->timer, 1, 10000000L);
    } else {
      siginfo_t info;
      memset(&info, 0, sizeof info);
      info.si_signo = shim.wake_sig;
      info.si_code = SI_QUEUE;
      info.si_pid = getpid();
      info.si_uid = getuid();
      info.si_value.sival_int = SHIM_WAKE_MAGIC;
      SHIM_SYSCALL(SYS_rt_tgsigqueueinfo, getpid(), s->tid, shim.wake_sig, &info);
    }
    atomic_store(&s->state, SLOT_KICKED);
  }
}

int shim_accept_in_progress(void) {
  int used = atomic_load(&slots_used);
  for (int i = 0; i < used; ++i) {
    if (atomic_load(&slots[i].owner) && atomic_load(&slots[i].state) != SLOT_FREE) return 1;
  }
  return 0;
}

static int real_accept(int fd, struct sockaddr* a, socklen_t* l, int flags, int four) {
  return four ? REAL(accept4)(fd, a, l, flags) : REAL(accept)(fd, a, l);
}

/* After the drain the fd is an inert socket: a blocking app waits forever,
 * a non-blocking one gets EAGAIN. A stray connection to it is closed. */
static int accept_drained(int fd, struct sockaddr* a, socklen_t* l, int flags, int four) {
  for (;;) {
    int nonblocking = (shim_fd_flags(fd) & FD_WANT_NONBLOCK) != 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (nonblocking) {
      int n = REAL(poll)(&p, 1, 0);
      if (n <= 0) {
        if (n == 0) errno = EAGAIN;
        return -1;
      }
    }
    thread_setup();
    shim_tl.woken = 0;
    int r = real_accept(fd, a, l, flags, four);
    if (r >= 0) {
      REAL(close)(r);
      continue;
    }
    if (errno == EINTR && shim_tl.woken) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && !nonblocking) {
      if (REAL(poll)(&p, 1, -1) < 0 && errno == EINTR && !shim_tl.woken) return -1;
      continue;
    }
    return -1;
  }
}

/* Blocking accept; if someone made the shared socket non-blocking, EAGAIN is
 * turned back into a wait. Our own wake signal is retried, not reported. */
static int accept_blocking(int fd, struct sockaddr* a, socklen_t* l, int flags, int four,
                           uint8_t f) {
  for (;;) {
    struct slot* s = slot_enter();
    if (shim_fd_flags(fd) & FD_DRAINED) {
      slot_leave(s);
      return accept_drained(fd, a, l, flags, four);
    }
    int r = real_accept(fd, a, l, flags, four);
    int e = errno;
    if (r >= 0) shim_fd_set_conn(r, f);
    int retry = 0;
    if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (REAL(poll)(&p, 1, -1) >= 0)
        retry = 1;
      else
        e = errno;
    }
    int woken = shim_tl.woken;
    slot_leave(s);
    if (r >= 0) return r;
    if (retry || (e == EINTR && woken)) continue;
    errno = e;
    return -1;
  }
}

static int accept_nonblocking(int fd, struct sockaddr* a, socklen_t* l, int flags, int four,
                              uint8_t f) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = REAL(poll)(&p, 1, 0);
  if (n <= 0) {
    if (n == 0) errno = EAGAIN;
    return -1;
  }
  struct slot* s = slot_enter();
  if (shim_fd_flags(fd) & FD_DRAINED) {
    slot_leave(s);
    return accept_drained(fd, a, l, flags, four);
  }
  int timed = shim_tl.has_timer && shim_timer_arm(shim_tl.timer, 2000000L, 0) == 0;
  int r = real_accept(fd, a, l, flags, four);
  int e = errno;
  if (timed) shim_timer_arm(shim_tl.timer, 0, 0);
  if (r >= 0) shim_fd_set_conn(r, f);
  int woken = shim_tl.woken;
  slot_leave(s);
  if (r >= 0) return r;
  errno = e == EINTR && woken ? EAGAIN : e;
  return -1;
}

/* An address the app sees through an AF_INET fd on a dual-stack socket:
 * v4-mapped (and unspecified) IPv6 addresses become sockaddr_in. */
static void copy_address(const struct sockaddr_storage* from, socklen_t from_len,
                         struct sockaddr* to, socklen_t* to_len) {
  const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)from;
  struct sockaddr_in v4;
  const void* src = from;
  socklen_t n = from_len;
  if (from->ss_family == AF_INET6 && from_len >= sizeof *in6 &&
      (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))) {
    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    v4.sin_port = in6->sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) memcpy(&v4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    src = &v4;
    n = sizeof v4;
  }
  memcpy(to, src, *to_len < n ? *to_len : n);
  *to_len = n;
}

static int accept_claimed(int fd, struct sockaddr* addr, socklen_t* len, int flags, int four,
                          uint8_t f) {
  int saved = errno;
  shim_mark_accepting();
  struct sockaddr_storage tmp;
  socklen_t tmp_len = sizeof tmp;
  int v4 = (f & FD_APP_V4) && addr && len;
  struct sockaddr* a = v4 ? (struct sockaddr*)&tmp : addr;
  socklen_t* l = v4 ? &tmp_len : len;
  int r;
  if (f & FD_DRAINED)
    r = accept_drained(fd, a, l, flags, four);
  else if (f & FD_WANT_NONBLOCK)
    r = accept_nonblocking(fd, a, l, flags, four, f);
  else
    r = accept_blocking(fd, a, l, flags, four, f);
  if (r < 0) return -1;
  if (v4) copy_address(&tmp, tmp_len, addr, len);
  errno = saved;
  return r;
}

SHIM_EXPORT int accept(int fd, __SOCKADDR_ARG addr_arg, socklen_t* len) {
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!(f & FD_CLAIMED)) return REAL(accept)(fd, SA_OUT(addr_arg), len);
  return accept_claimed(fd, SA_OUT(addr_arg), len, 0, 0, f);
}

SHIM_EXPORT int accept4(int fd, __SOCKADDR_ARG addr_arg, socklen_t* len, int flags) {
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!(f & FD_CLAIMED)) return REAL(accept4)(fd, SA_OUT(addr_arg), len, flags);
  return accept_claimed(fd, SA_OUT(addr_arg), len, flags, 1, f);
}

/* getsockname/getpeername through an AF_INET fd on a dual-stack socket. */
static int v4_view(int (*real)(int, struct sockaddr*, socklen_t*), int fd, struct sockaddr* addr,
                   socklen_t* len) {
  struct sockaddr_storage tmp;
  socklen_t tmp_len = sizeof tmp;
  if (real(fd, (struct sockaddr*)&tmp, &tmp_len) != 0) return -1;
  copy_address(&tmp, tmp_len, addr, len);
  return 0;
}

SHIM_EXPORT int getsockname(int fd, __SOCKADDR_ARG addr_arg, socklen_t* len) {
  struct sockaddr* addr = SA_OUT(addr_arg);
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!(f & (FD_APP_V4 | FD_CONN_V4)) || !addr || !len) return REAL(getsockname)(fd, addr, len);
  return v4_view(REAL(getsockname), fd, addr, len);
}

SHIM_EXPORT int getpeername(int fd, __SOCKADDR_ARG addr_arg, socklen_t* len) {
  struct sockaddr* addr = SA_OUT(addr_arg);
  uint8_t f = shim.active ? shim_fd_flags(fd) : 0;
  if (!(f & FD_CONN_V4) || !addr || !len) return REAL(getpeername)(fd, addr, len);
  return v4_view(REAL(getpeername), fd, addr, len);
}

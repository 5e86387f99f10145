/* Internal to libbaton_shim: the process-wide state every interposer shares,
 * the table of real libc functions, and the helpers the files call across.
 * Nothing here is exported; only the interposed libc symbols are (SHIM_EXPORT). */
#pragma once

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

/* Fixed table sizes: nothing is allocated after the constructor. */
#define SHIM_MAX_FD 65536     /* fds tracked by number; higher ones pass through */
#define SHIM_MAX_INHERITED 64 /* one bit each in a 64-bit mask */
#define SHIM_MAX_EPOLL 4096   /* (epoll set, claimed fd) registrations */
#define SHIM_MAX_THREADS 1024 /* threads that ever called accept on a claimed fd */
#define SHIM_PATH_MAX 4096

/* si_value of the shim's own wake signals (timers and queued kicks). */
#define SHIM_WAKE_MAGIC 0x6274e001

/* Per-fd flags (shim_fd[fd]). */
enum {
  FD_CLAIMED = 0x01,       /* the app's fd is a copy of an inherited socket */
  FD_WANT_NONBLOCK = 0x02, /* the O_NONBLOCK the app asked for (never applied) */
  FD_DRAINED = 0x04,       /* replaced by an inert socket when the drain began */
  FD_APP_V4 = 0x08,        /* claimed by an AF_INET bind on a dual-stack socket */
  FD_CONN = 0x10,          /* a connection accepted on a claimed fd: counted */
  FD_CONN_V4 = 0x20,       /* ... accepted through an FD_APP_V4 fd */
  FD_EPOLL = 0x40,         /* an epoll set the registration table refers to */
  FD_STASH = 0x80,         /* one of the shim's own fds: the app never sees it */
};
#define FD_COPY_MASK (FD_CLAIMED | FD_WANT_NONBLOCK | FD_DRAINED | FD_APP_V4 | FD_CONN | FD_CONN_V4)

/* One socket baton handed over, as found at fd 3 + index. */
struct shim_inherited {
  int stash_fd; /* our CLOEXEC copy, far above the app's fds */
  int type;     /* SO_TYPE; 0 when the fd was not a socket (never matches) */
  int family;   /* SO_DOMAIN */
  int protocol; /* SO_PROTOCOL */
  int v6only;   /* IPV6_V6ONLY, for AF_INET6 */
  socklen_t addr_len;
  struct sockaddr_storage addr; /* getsockname */
  char path[SHIM_PATH_MAX];     /* AF_UNIX path sockets: normalised absolute path */
};

/* State shared with forked children through a MAP_SHARED page. */
struct shim_shared {
  atomic_int ready_sent; /* READY=1 went out from some process of the app */
};

struct shim_state {
  int active; /* sockets were inherited and taken over; set once, in the constructor.
               * The first field: exec.c's vfork reads it from assembly. */
  int count;  /* inherited sockets */
  struct shim_inherited sock[SHIM_MAX_INHERITED];
  uint64_t all_mask;             /* bits of the inherited fds that are sockets */
  atomic_uint_least64_t claimed; /* bits of the inherited sockets some bind() claimed */
  int stash_lo, stash_hi;        /* range of our fds (stash, inert, notify), each FD_STASH */
  int inert[2][2];               /* [datagram][nonblocking]: sockets nobody will reach */
  int notify_fd;                 /* -1 without NOTIFY_SOCKET */
  struct sockaddr_storage notify_addr;
  socklen_t notify_len;
  int drain_sig;               /* BATON_SHIM_DRAIN_SIGNAL, default SIGTERM */
  int wake_sig;                /* SIGRTMAX-3: interrupts our own accept calls */
  char fdnames[SHIM_PATH_MAX]; /* LISTEN_FDNAMES as inherited, for an exec hand-on */
  int has_fdnames;
  struct shim_shared* shared;
  atomic_int accepting;      /* the app started accepting on a claimed fd */
  atomic_int ready_local;    /* this process has seen readiness: stop scanning */
  atomic_int max_claimed_fd; /* bound for the drain's scan */
  atomic_int conns;          /* open counted connections (fds) */
  atomic_int draining;
  atomic_int finished;  /* the drain signal was handed back to the app */
  atomic_uint fork_gen; /* bumped in every forked child */
};

/* Per thread: the wake timer and the accept slot (see accept.c). */
struct shim_thread {
  unsigned gen; /* shim.fork_gen when set up; anything else means "not yet" */
  int slot;     /* index into the accept slot table, -1 without one */
  int has_timer;
  timer_t timer;
  volatile sig_atomic_t woken; /* our wake signal arrived */
};

extern struct shim_state shim;
extern __thread struct shim_thread shim_tl __attribute__((tls_model("initial-exec")));
extern _Atomic uint8_t shim_fd[SHIM_MAX_FD];
extern _Atomic uint8_t shim_fd_claim[SHIM_MAX_FD]; /* inherited index of a claimed fd */

/* The real functions, resolved with dlsym(RTLD_NEXT) in the constructor (and
 * lazily before it, for calls made by other libraries' constructors). */
struct shim_real {
  int (*bind)(int, const struct sockaddr*, socklen_t);
  int (*listen)(int, int);
  int (*accept)(int, struct sockaddr*, socklen_t*);
  int (*accept4)(int, struct sockaddr*, socklen_t*, int);
  int (*getsockname)(int, struct sockaddr*, socklen_t*);
  int (*getpeername)(int, struct sockaddr*, socklen_t*);
  int (*socket)(int, int, int);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  int (*close_range)(unsigned, unsigned, int);
  void (*closefrom)(int);
  int (*fclose)(FILE*);
  int (*unlink)(const char*);
  int (*unlinkat)(int, const char*, int);
  int (*remove)(const char*);
  int (*poll)(struct pollfd*, nfds_t, int);
  int (*ppoll)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*);
  int (*__poll_chk)(struct pollfd*, nfds_t, int, size_t);
  int (*__ppoll_chk)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*, size_t);
  int (*select)(int, fd_set*, fd_set*, fd_set*, struct timeval*);
  int (*pselect)(int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*);
  int (*epoll_ctl)(int, int, int, struct epoll_event*);
  ssize_t (*recv)(int, void*, size_t, int);
  ssize_t (*recvfrom)(int, void*, size_t, int, struct sockaddr*, socklen_t*);
  ssize_t (*recvmsg)(int, struct msghdr*, int);
  int (*recvmmsg)(int, struct mmsghdr*, unsigned, int, struct timespec*);
  ssize_t (*__recv_chk)(int, void*, size_t, size_t, int);
  ssize_t (*__recvfrom_chk)(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);
  int (*sigaction)(int, const struct sigaction*, struct sigaction*);
  __sighandler_t (*signal)(int, __sighandler_t);
  __sighandler_t (*bsd_signal)(int, __sighandler_t);
  __sighandler_t (*sysv_signal)(int, __sighandler_t);
  __sighandler_t (*__sysv_signal)(int, __sighandler_t);
  __sighandler_t (*sigset)(int, __sighandler_t);
  int (*sigprocmask)(int, const sigset_t*, sigset_t*);
  int (*pthread_sigmask)(int, const sigset_t*, sigset_t*);
  int (*execve)(const char*, char* const[], char* const[]);
  int (*execvpe)(const char*, char* const[], char* const[]);
  int (*fexecve)(int, char* const[], char* const[]);
  int (*execveat)(int, const char*, char* const[], char* const[], int);
  long (*syscall)(long, ...);
};
extern struct shim_real shim_real;

extern void* shim_real_vfork;

void* shim_resolve(void** slot, const char* name);
#define REAL(f) ((__typeof__(shim_real.f))shim_resolve((void**)&shim_real.f, #f))
/* The shim's own system calls: straight to libc's syscall(), not through
 * the shim's (syscall.c). */
#define SHIM_SYSCALL(...) REAL(syscall)(__VA_ARGS__)

/* baton_shim.c */
void shim_resolve_all(void);
static inline uint8_t shim_fd_flags(int fd) {
  return (unsigned)fd < SHIM_MAX_FD ? atomic_load_explicit(&shim_fd[fd], memory_order_relaxed) : 0;
}
static inline int shim_is_stash(int fd) {
  return (shim_fd_flags(fd) & FD_STASH) != 0;
}
void shim_log(const char* text); /* one line to stderr, async-signal-safe */

/* notify.c: sd_notify datagrams, async-signal-safe. */
struct shim_msg {
  char text[1024];
  size_t len;
};
void shim_msg_str(struct shim_msg* m, const char* s);
void shim_msg_uint(struct shim_msg* m, unsigned long v);
void shim_notify_send(const struct shim_msg* m);
int shim_notify_parse(const char* value);

/* bind.c */
int shim_normalize_path(const char* path, size_t len, char* out, size_t cap);
void shim_format_addr(const struct sockaddr* sa, socklen_t len, char* out, size_t cap);

/* fds.c */
int shim_close(int fd, int raw);
void shim_fd_copy(int from, int to);
void shim_fd_reset_new(int fd);
void shim_fd_set_conn(int fd, uint8_t listener_flags);

/* epoll.c */
void shim_epoll_forget_fd(int fd, int del);
void shim_epoll_forget_epfd(int epfd);
void shim_epoll_swap(int fd, int inert);

/* ready.c */
void shim_mark_accepting(void);
void shim_check_ready(void);

/* accept.c */
void shim_thread_forked(void);
void shim_kick_accepting_threads(void);
int shim_accept_in_progress(void);
int shim_timer_arm(timer_t timer, long first_ns, long interval_ns);

/* drain.c */
void shim_drain_install(void);
void shim_drain_make_timer(void);
void shim_maybe_finish(void);

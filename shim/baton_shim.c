/* libbaton_shim: hands baton's inherited listening sockets to a program that
 * binds its own port. This file holds the process-wide state and the
 * constructor that takes the sockets over before main() runs. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

struct shim_state shim = {.stash_lo = 1, .stash_hi = 0, .notify_fd = -1};
struct shim_real shim_real;
__thread struct shim_thread shim_tl __attribute__((tls_model("initial-exec")));
_Atomic uint8_t shim_fd[SHIM_MAX_FD];
_Atomic uint8_t shim_fd_claim[SHIM_MAX_FD];

/* Used only when the MAP_SHARED page cannot be had. */
static struct shim_shared private_shared;

void* shim_resolve(void** slot, const char* name) {
  void* p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (p) return p;
  p = dlsym(RTLD_NEXT, name);
  if (!p) {
    shim_log("baton-shim: fatal: cannot find the real function");
    shim_log(name);
    abort();
  }
  __atomic_store_n(slot, p, __ATOMIC_RELEASE);
  return p;
}

/* Resolves every real function up front, so that signal handlers and fork
 * children never reach dlsym. Symbols this libc lacks stay NULL: a program
 * cannot call our wrapper of a function its libc does not have. */
void shim_resolve_all(void) {
  static const char* const names[] = {
      "bind",
      "listen",
      "accept",
      "accept4",
      "getsockname",
      "getpeername",
      "socket",
      "close",
      "dup",
      "dup2",
      "dup3",
      "fcntl",
      "fcntl64",
      "ioctl",
      "close_range",
      "closefrom",
      "fclose",
      "unlink",
      "unlinkat",
      "remove",
      "poll",
      "ppoll",
      "__poll_chk",
      "__ppoll_chk",
      "select",
      "pselect",
      "epoll_ctl",
      "recv",
      "recvfrom",
      "recvmsg",
      "recvmmsg",
      "__recv_chk",
      "__recvfrom_chk",
      "sigaction",
      "signal",
      "bsd_signal",
      "sysv_signal",
      "__sysv_signal",
      "sigset",
      "sigprocmask",
      "pthread_sigmask",
      "execve",
      "execvpe",
      "fexecve",
      "execveat",
      "syscall",
  };
  void** slots = (void**)&shim_real;
  _Static_assert(sizeof shim_real == sizeof names, "one name per real function");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    if (!slots[i]) slots[i] = dlsym(RTLD_NEXT, names[i]);
  }
  if (!shim_real_vfork) shim_real_vfork = dlsym(RTLD_NEXT, "vfork");
}

void shim_log(const char* text) {
  int saved = errno;
  size_t len = strlen(text);
  char line[512];
  if (len > sizeof line - 1) len = sizeof line - 1;
  memcpy(line, text, len);
  line[len] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, len + 1);
  (void)ignored;
  errno = saved;
}

static int parse_long(const char* s, long* out) {
  if (!s || !*s) return 0;
  char* end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end) return 0;
  *out = v;
  return 1;
}

/* Records what fd `fd` is: type, family, protocol, address, v6only. */
static void inspect(int fd, struct shim_inherited* s) {
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &s->type, &len) != 0) {
    s->type = 0;
    return;
  }
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &s->family, &len);
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &s->protocol, &len);
  s->addr_len = sizeof s->addr;
  if (getsockname(fd, (struct sockaddr*)&s->addr, &s->addr_len) != 0) s->addr_len = 0;
  if (s->family == AF_INET6) {
    len = sizeof(int);
    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &s->v6only, &len);
  }
  const struct sockaddr_un* un = (const struct sockaddr_un*)&s->addr;
  size_t path_len = s->addr_len > offsetof(struct sockaddr_un, sun_path)
                        ? s->addr_len - offsetof(struct sockaddr_un, sun_path)
                        : 0;
  if (s->family == AF_UNIX && path_len > 0 && un->sun_path[0] != '\0') {
    size_t n = strnlen(un->sun_path, path_len);
    if (shim_normalize_path(un->sun_path, n, s->path, sizeof s->path) != 0) s->path[0] = '\0';
  }
}

/* The lowest fd of our hidden block: 1000 when the fd limit allows, else just
 * under the limit. -1 when there is no room above the inherited fds. */
static int stash_base(int need) {
  struct rlimit rl;
  long limit = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ? INT_MAX : (long)rl.rlim_cur;
  long base = 1000;
  if (base + need > limit) base = limit - need;
  return base >= 3 + need ? (int)base : -1;
}

static void mark_stash(int fd) {
  if ((unsigned)fd < SHIM_MAX_FD) atomic_store(&shim_fd[fd], FD_STASH);
  if (fd < shim.stash_lo || shim.stash_lo > shim.stash_hi) shim.stash_lo = fd;
  if (fd > shim.stash_hi) shim.stash_hi = fd;
}

/* Moves `fd` to the lowest free fd >= `floor` (CLOEXEC) and closes `fd`. */
static int move_high(int fd, int floor) {
  int high = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor);
  if (high < 0) return -1;
  REAL(close)(fd);
  mark_stash(high);
  return high;
}

/* A socket nobody will ever reach: a unix socket with an autobound abstract
 * name (bind with only the family), listening when it is a stream socket. */
static int make_inert(int type, int nonblock, int floor) {
  int fd = REAL(socket)(AF_UNIX, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (REAL(bind)(fd, (struct sockaddr*)&addr, sizeof(sa_family_t)) != 0 ||
      (type == SOCK_STREAM && REAL(listen)(fd, 1) != 0)) {
    REAL(close)(fd);
    return -1;
  }
  return move_high(fd, floor);
}

/* Takes the inherited fds 3..3+n-1 into the stash. All or nothing. */
static int take_sockets(int n) {
  int base = stash_base(n + 5);
  if (base < 0) {
    shim_log(
        "baton-shim: no room for the inherited sockets under RLIMIT_NOFILE; "
        "the shim stays out of the way");
    return -1;
  }
  for (int i = 0; i < n; ++i) {
    inspect(3 + i, &shim.sock[i]);
    int high = REAL(fcntl)(3 + i, F_DUPFD_CLOEXEC, base + i);
    if (high < 0) {
      char line[160];
      snprintf(line, sizeof line,
               "baton-shim: cannot take over inherited fd %d: %s; "
               "the shim stays out of the way",
               3 + i, strerror(errno));
      shim_log(line);
      for (int j = 0; j < i; ++j) REAL(close)(shim.sock[j].stash_fd);
      return -1;
    }
    shim.sock[i].stash_fd = high;
    if (shim.sock[i].type) shim.all_mask |= UINT64_C(1) << i;
  }
  for (int i = 0; i < n; ++i) {
    mark_stash(shim.sock[i].stash_fd);
    REAL(close)(3 + i);
  }
  int floor = base + n;
  for (int dgram = 0; dgram < 2; ++dgram) {
    for (int nb = 0; nb < 2; ++nb) {
      shim.inert[dgram][nb] = make_inert(dgram ? SOCK_DGRAM : SOCK_STREAM, nb, floor);
    }
  }
  if (shim.notify_len) {
    int fd = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    shim.notify_fd = fd >= 0 ? move_high(fd, floor) : -1;
  }
  return 0;
}

static void after_fork_in_child(void) {
  atomic_fetch_add(&shim.fork_gen, 1);
  shim_thread_forked();
  shim_drain_make_timer();
}

static void announce_loaded(void) {
  struct shim_msg m = {.len = 0};
  shim_msg_str(&m, BATON_SHIM_NOTIFY "=" BATON_SHIM_LOADED "\nSTATUS=baton-shim: loaded in pid ");
  shim_msg_uint(&m, (unsigned long)getpid());
  shim_msg_str(&m, ", ");
  shim_msg_uint(&m, (unsigned long)shim.count);
  shim_msg_str(&m, " sockets inherited");
  shim_notify_send(&m);
}

__attribute__((constructor)) static void shim_init(void) {
  shim_resolve_all();
  atomic_store(&shim.fork_gen, 1);
  long pid = 0, n = 0;
  if (!parse_long(getenv("LISTEN_PID"), &pid) || !parse_long(getenv("LISTEN_FDS"), &n)) return;
  if (pid != (long)getpid() || n <= 0) return;
  if (n > SHIM_MAX_INHERITED) {
    shim_log("baton-shim: more than 64 inherited sockets; the shim stays out of the way");
    return;
  }
  long sig = SIGTERM;
  if (parse_long(getenv(BATON_ENV_SHIM_DRAIN_SIGNAL), &sig) &&
      (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)) {
    shim_log("baton-shim: " BATON_ENV_SHIM_DRAIN_SIGNAL " is not a usable signal; using SIGTERM");
    sig = SIGTERM;
  }
  shim.drain_sig = (int)sig;
  shim.wake_sig = SIGRTMAX - 3 == shim.drain_sig ? SIGRTMAX - 4 : SIGRTMAX - 3;
  shim_notify_parse(getenv("NOTIFY_SOCKET"));
  shim.count = (int)n;
  if (take_sockets((int)n) != 0) {
    shim.count = 0;
    return;
  }
  void* page = mmap(NULL, sizeof(struct shim_shared), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  shim.shared = page == MAP_FAILED ? &private_shared : page;
  const char* names = getenv("LISTEN_FDNAMES");
  if (names && strlen(names) < sizeof shim.fdnames) {
    strcpy(shim.fdnames, names);
    shim.has_fdnames = 1;
  }
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDNAMES");
  pthread_atfork(NULL, NULL, after_fork_in_child);
  shim.active = 1;
  shim_drain_install();
  announce_loaded();
}

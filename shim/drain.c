/* The drain. The shim owns the drain signal: the app's sigaction/signal calls
 * for it are recorded (and reported back) while the shim's handler stays
 * installed. On the signal, every claimed fd leaves its epoll sets, becomes
 * an inert socket and goes back in; threads inside accept are woken; baton
 * hears STOPPING=1. Then the signal is handed back to the app (its own
 * action restored, the signal raised again), at a moment that depends on
 * what that action is:
 *
 *  - a handler that stays installed (not SIG_DFL or SIG_IGN, no
 *    SA_RESETHAND) is the app's graceful path: it is what closes idle
 *    keep-alive connections and finishes the rest. It gets the signal as
 *    soon as the app can no longer accept: the listeners are swapped and no
 *    thread is inside accept (a connection an accept in progress takes is
 *    counted first). Open connections are the app's to finish, as they
 *    would be without the shim;
 *  - SIG_DFL (which terminates), SIG_IGN, and a one-shot SA_RESETHAND
 *    handler (the "clean up, then die by the signal" idiom, e.g. node's
 *    default) would end the app mid-request: the signal waits until no
 *    counted connection is open either, checked here and on every close of
 *    a counted connection.
 *
 * The action that counts is the app's at the time of the check, so a
 * handler installed during a drain ends the wait for connections.
 * The wake signal (SIGRTMAX-3) is the shim's too: never blocked, chained to
 * any handler the app sets for it. Handlers use syscalls and atomics only. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static struct sigaction app_drain; /* what the app asked for the drain signal */
static struct sigaction app_wake;
static siginfo_t drain_info; /* the signal baton sent, raised again at the end */
static atomic_int have_info;
static timer_t finish_timer; /* process-directed drain signal, for finish() */
static int has_finish_timer; /* made again in forked children */

static int owned(int sig) {
  if (!shim.active) return 0;
  return sig == shim.wake_sig || (sig == shim.drain_sig && !atomic_load(&shim.finished));
}

static int ignored_by_default(int sig) {
  return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

/* Hands the drain signal back to the app and raises it again. In the drain
 * handler it goes to this very thread, as the kernel chose it for baton's
 * signal. Elsewhere (the last close()) a handler of the app's is reached by
 * a process-directed signal 10 ms later, from a timer: raised at once inside
 * close() it would land between the app's check of its flag and its next
 * blocking call, a window it would otherwise hardly ever hit. */
static void finish(int in_handler) {
  int sig = shim.drain_sig;
  struct sigaction action = app_drain;
  if (action.sa_handler == SIG_IGN || (action.sa_handler == SIG_DFL && ignored_by_default(sig)))
    _exit(0);
  REAL(sigaction)(sig, &action, NULL);
  pid_t pid = getpid();
  if (in_handler) {
    long tid = SHIM_SYSCALL(SYS_gettid);
    if (!atomic_load(&have_info) ||
        SHIM_SYSCALL(SYS_rt_tgsigqueueinfo, pid, tid, sig, &drain_info) != 0)
      SHIM_SYSCALL(SYS_tgkill, pid, tid, sig);
    return;
  }
  if (action.sa_handler != SIG_DFL && has_finish_timer &&
      shim_timer_arm(finish_timer, 10000000L, 0) == 0)
    return;
  if (!atomic_load(&have_info) || SHIM_SYSCALL(SYS_rt_sigqueueinfo, pid, sig, &drain_info) != 0)
    kill(pid, sig);
}

/* The app's action for the drain signal is a handler that stays installed:
 * its graceful path, which gets the signal without waiting for connections. */
static int app_drains_itself(void) {
  struct sigaction a = app_drain;
  return a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN && !(a.sa_flags & SA_RESETHAND);
}

static void maybe_finish(int in_handler) {
  if (!atomic_load(&shim.draining) || atomic_load(&shim.finished)) return;
  if (shim_accept_in_progress()) return;
  if (!app_drains_itself() && atomic_load(&shim.conns) > 0) return;
  if (atomic_exchange(&shim.finished, 1)) return;
  int saved = errno;
  finish(in_handler);
  errno = saved;
}

void shim_maybe_finish(void) {
  maybe_finish(0);
}

static void begin_drain(void) {
  int top = atomic_load(&shim.max_claimed_fd);
  for (int fd = 0; fd <= top && fd < SHIM_MAX_FD; ++fd) {
    uint8_t f = shim_fd_flags(fd);
    if (!(f & FD_CLAIMED) || (f & FD_DRAINED)) continue;
    const struct shim_inherited* s = &shim.sock[atomic_load(&shim_fd_claim[fd])];
    int inert = shim.inert[s->type == SOCK_DGRAM][(f & FD_WANT_NONBLOCK) != 0];
    if (inert < 0) continue;
    shim_epoll_swap(fd, inert);
    atomic_fetch_or(&shim_fd[fd], FD_DRAINED);
  }
  shim_kick_accepting_threads();
  struct shim_msg m = {.len = 0};
  shim_msg_str(&m, "STOPPING=1\nSTATUS=baton-shim: draining pid ");
  shim_msg_uint(&m, (unsigned long)getpid());
  shim_msg_str(&m, ", ");
  int open = atomic_load(&shim.conns);
  shim_msg_uint(&m, open > 0 ? (unsigned long)open : 0);
  shim_msg_str(&m, " connections open");
  shim_notify_send(&m);
}

static void drain_handler(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)context;
  int saved = errno;
  if (!atomic_exchange(&shim.draining, 1)) {
    if (info) {
      drain_info = *info;
      atomic_store(&have_info, 1);
    }
    begin_drain();
  }
  maybe_finish(1);
  errno = saved;
}

/* SA_RESTART as the app chose it for its own handler, so its system calls
 * see EINTR exactly when they would have; always, when it has none. */
static void install_drain_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = drain_handler;
  int app_handles = app_drain.sa_handler != SIG_DFL && app_drain.sa_handler != SIG_IGN;
  sa.sa_flags = SA_SIGINFO | (app_handles && !(app_drain.sa_flags & SA_RESTART) ? 0 : SA_RESTART);
  sigfillset(&sa.sa_mask);
  REAL(sigaction)(shim.drain_sig, &sa, NULL);
}

/* A wake signal that is not ours goes to the app's action for it. */
static void chain_wake(int sig, siginfo_t* info, void* context) {
  struct sigaction a = app_wake;
  if (a.sa_handler == SIG_IGN) return;
  if (a.sa_handler == SIG_DFL) {
    /* Real-time signals terminate by default: let this one do so. */
    REAL(sigaction)(sig, &a, NULL);
    SHIM_SYSCALL(SYS_tgkill, getpid(), SHIM_SYSCALL(SYS_gettid), sig);
    return;
  }
  sigset_t old;
  REAL(pthread_sigmask)(SIG_BLOCK, &a.sa_mask, &old);
  if (a.sa_flags & SA_SIGINFO)
    a.sa_sigaction(sig, info, context);
  else
    a.sa_handler(sig);
  REAL(pthread_sigmask)(SIG_SETMASK, &old, NULL);
  if (a.sa_flags & SA_RESETHAND) app_wake.sa_handler = SIG_DFL;
}

static void wake_handler(int sig, siginfo_t* info, void* context) {
  if (info && (info->si_code == SI_TIMER || info->si_code == SI_QUEUE) &&
      info->si_value.sival_int == SHIM_WAKE_MAGIC) {
    shim_tl.woken = 1;
    return;
  }
  int saved = errno;
  chain_wake(sig, info, context);
  errno = saved;
}

/* Timers are not inherited across fork: the atfork child handler calls this. */
void shim_drain_make_timer(void) {
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = shim.drain_sig;
  has_finish_timer = timer_create(CLOCK_MONOTONIC, &sev, &finish_timer) == 0;
}

void shim_drain_install(void) {
  shim_drain_make_timer();
  REAL(sigaction)(shim.drain_sig, NULL, &app_drain);
  REAL(sigaction)(shim.wake_sig, NULL, &app_wake);
  install_drain_handler();
  struct sigaction wake;
  memset(&wake, 0, sizeof wake);
  wake.sa_sigaction = wake_handler;
  wake.sa_flags = SA_SIGINFO; /* no SA_RESTART: it is there to interrupt accept */
  sigemptyset(&wake.sa_mask);
  REAL(sigaction)(shim.wake_sig, &wake, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, shim.wake_sig);
  REAL(pthread_sigmask)(SIG_UNBLOCK, &set, NULL);
}

SHIM_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!owned(sig)) return REAL(sigaction)(sig, act, old);
  struct sigaction* app = sig == shim.wake_sig ? &app_wake : &app_drain;
  struct sigaction prev = *app;
  if (act) {
    *app = *act;
    if (sig == shim.drain_sig) install_drain_handler();
  }
  if (old) *old = prev;
  if (act && sig == shim.drain_sig) maybe_finish(0);
  return 0;
}

/* The signal()-style calls, with glibc's flags for each, through sigaction. */
static __sighandler_t set_handler(int sig, __sighandler_t handler, int flags, int mask_self) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  if (mask_self) sigaddset(&act.sa_mask, sig);
  sigaction(sig, &act, &old);
  return old.sa_handler;
}

SHIM_EXPORT __sighandler_t signal(int sig, __sighandler_t handler) {
  if (!owned(sig)) return REAL(signal)(sig, handler);
  return set_handler(sig, handler, SA_RESTART, 1);
}

SHIM_EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t handler) {
  if (!owned(sig)) return REAL(bsd_signal)(sig, handler);
  return set_handler(sig, handler, SA_RESTART, 1);
}

SHIM_EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t handler) {
  if (!owned(sig)) return REAL(sysv_signal)(sig, handler);
  return set_handler(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

SHIM_EXPORT __sighandler_t __sysv_signal(int sig, __sighandler_t handler) {
  if (!owned(sig)) return REAL(__sysv_signal)(sig, handler);
  return set_handler(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

SHIM_EXPORT __sighandler_t sigset(int sig, __sighandler_t handler) {
  if (!owned(sig) || handler == SIG_HOLD) return REAL(sigset)(sig, handler);
  __sighandler_t old = set_handler(sig, handler, 0, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  REAL(sigprocmask)(SIG_UNBLOCK, &set, NULL);
  return old;
}

/* The wake signal must reach a thread inside accept: masks never block it. */
static const sigset_t* without_wake(int how, const sigset_t* set, sigset_t* copy) {
  if (!shim.active || !set || how == SIG_UNBLOCK || sigismember(set, shim.wake_sig) != 1)
    return set;
  *copy = *set;
  sigdelset(copy, shim.wake_sig);
  return copy;
}

SHIM_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  return REAL(sigprocmask)(how, without_wake(how, set, &copy), old);
}

SHIM_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  return REAL(pthread_sigmask)(how, without_wake(how, set, &copy), old);
}

/* Process creation as the shim needs it.
 *
 * vfork: a vfork child shares its parent's memory, so every wrapper it calls
 * before exec (close, closefrom, dup2 ...) would rewrite the parent's fd
 * table. In a process with taken-over sockets vfork is therefore a fork.
 *
 * Exec hand-on: a process that inherited the sockets but has claimed none
 * of them (a wrapper such as env, nice, chrt, or a shell's exec) passes them
 * on to the program it execs, as fds 3.. with LISTEN_FDS, LISTEN_PID and
 * LISTEN_FDNAMES, and the shim in that program takes them over. After a
 * claim, exec'd programs inherit nothing: the stash is CLOEXEC and the
 * variables are gone. Only the stack and the fd table are touched. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

extern char** environ;

/* The real vfork, for processes without sockets (see vfork below). */
void* shim_real_vfork;

#if defined(__x86_64__)
/* A tail jump, without a frame: a vfork child returns straight to the app's
 * caller, as it must (its parent then resumes on the same stack). */
__attribute__((naked)) SHIM_EXPORT pid_t vfork(void) {
  __asm__(
      "cmpl $0, shim(%rip)\n\t" /* shim.active is the first field */
      "jne 1f\n\t"
      "movq shim_real_vfork(%rip), %rax\n\t"
      "testq %rax, %rax\n\t"
      "je 1f\n\t"
      "jmp *%rax\n"
      "1:\n\t"
      "jmp fork@PLT\n\t");
}
#else
SHIM_EXPORT pid_t vfork(void) {
  return fork();
}
#endif

/* Puts the inherited sockets at 3.. when nothing is claimed and those fds
 * are free. Returns 1 when it did (undo with hand_on_undo on failure). */
static int hand_on_begin(void) {
  if (!shim.active || atomic_load(&shim.claimed) || atomic_load(&shim.draining)) return 0;
  int saved = errno;
  int ok = 1;
  for (int i = 0; i < shim.count && ok; ++i) {
    ok = REAL(fcntl)(3 + i, F_GETFD) < 0 && errno == EBADF;
  }
  for (int i = 0; i < shim.count && ok; ++i) {
    if (REAL(dup2)(shim.sock[i].stash_fd, 3 + i) < 0) {
      for (int j = 0; j < i; ++j) REAL(close)(3 + j);
      ok = 0;
    }
  }
  errno = saved;
  return ok;
}

static void hand_on_undo(void) {
  int saved = errno;
  for (int i = 0; i < shim.count; ++i) REAL(close)(3 + i);
  errno = saved;
}

static size_t count(char* const* list) {
  size_t n = 0;
  while (list && list[n]) ++n;
  return n;
}

static int starts_with(const char* s, const char* prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void put_number(char* out, const char* key, unsigned long v) {
  struct shim_msg m = {.len = 0};
  shim_msg_str(&m, key);
  shim_msg_uint(&m, v);
  memcpy(out, m.text, m.len);
  out[m.len] = '\0';
}

/* The environment with our LISTEN_* variables in place of any it has.
 * `out` has room for count(envp) + 4 entries. */
static char* const* hand_on_env(char* const* envp, char** out, char* fds, char* pid, char* names) {
  size_t o = 0;
  for (size_t i = 0; envp && envp[i]; ++i) {
    if (starts_with(envp[i], "LISTEN_FDS=") || starts_with(envp[i], "LISTEN_PID=") ||
        starts_with(envp[i], "LISTEN_FDNAMES="))
      continue;
    out[o++] = envp[i];
  }
  put_number(fds, "LISTEN_FDS=", (unsigned long)shim.count);
  put_number(pid, "LISTEN_PID=", (unsigned long)getpid());
  out[o++] = fds;
  out[o++] = pid;
  if (shim.has_fdnames) {
    memcpy(names, "LISTEN_FDNAMES=", 15);
    strcpy(names + 15, shim.fdnames);
    out[o++] = names;
  }
  out[o] = NULL;
  return out;
}

/* Runs `call` (an exec that returns only on failure) with the hand-on
 * environment in `env`, or with `envp` as given when there is no hand-on. */
#define WITH_HAND_ON(envp, env, call)                                           \
  do {                                                                          \
    if (!hand_on_begin()) {                                                     \
      char* const* env = (envp);                                                \
      return call;                                                              \
    }                                                                           \
    char* slots[count(envp) + 4];                                               \
    char fds_var[32], pid_var[32], names_var[SHIM_PATH_MAX + 16];               \
    char* const* env = hand_on_env((envp), slots, fds_var, pid_var, names_var); \
    int result = call;                                                          \
    hand_on_undo();                                                             \
    return result;                                                              \
  } while (0)

static int do_execve(const char* path, char* const argv[], char* const envp[]) {
  WITH_HAND_ON(envp, env, REAL(execve)(path, argv, env));
}

static int do_execvpe(const char* file, char* const argv[], char* const envp[]) {
  WITH_HAND_ON(envp, env, REAL(execvpe)(file, argv, env));
}

SHIM_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  return do_execve(path, argv, envp);
}

SHIM_EXPORT int execv(const char* path, char* const argv[]) {
  return do_execve(path, argv, environ);
}

SHIM_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return do_execvpe(file, argv, envp);
}

SHIM_EXPORT int execvp(const char* file, char* const argv[]) {
  return do_execvpe(file, argv, environ);
}

SHIM_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  WITH_HAND_ON(envp, env, REAL(fexecve)(fd, argv, env));
}

SHIM_EXPORT int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                         int flags) {
  WITH_HAND_ON(envp, env, REAL(execveat)(dirfd, path, argv, env, flags));
}

/* execl, execlp, execle: the variadic arguments as an argv on the stack (the
 * NULL that ends them included); for execle, `extra` then reads the envp.
 * glibc declares the first argument nonnull, but execl(path, NULL) happens:
 * the empty asm keeps the compiler from dropping the check. */
#define COLLECT_ARGS(first, argv, extra)                          \
  va_list ap;                                                     \
  size_t argc = 0;                                                \
  const char* first_arg = (first);                                \
  __asm__("" : "+r"(first_arg));                                  \
  if (first_arg) {                                                \
    argc = 1;                                                     \
    va_start(ap, first);                                          \
    while (va_arg(ap, const char*)) ++argc;                       \
    va_end(ap);                                                   \
  }                                                               \
  char* argv[argc + 1];                                           \
  argv[0] = (char*)(first);                                       \
  va_start(ap, first);                                            \
  for (size_t i = 1; i <= argc; ++i) argv[i] = va_arg(ap, char*); \
  extra;                                                          \
  va_end(ap)

SHIM_EXPORT int execl(const char* path, const char* arg, ...) {
  COLLECT_ARGS(arg, argv, (void)0);
  return do_execve(path, argv, environ);
}

SHIM_EXPORT int execlp(const char* file, const char* arg, ...) {
  COLLECT_ARGS(arg, argv, (void)0);
  return do_execvpe(file, argv, environ);
}

SHIM_EXPORT int execle(const char* path, const char* arg, ...) {
  char* const* envp;
  COLLECT_ARGS(arg, argv, envp = va_arg(ap, char* const*));
  return do_execve(path, argv, envp);
}

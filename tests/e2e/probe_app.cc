// probe_app: a test app that reports what it inherited from baton. At start
// it writes its open fds, argv and LISTEN_* / NOTIFY_SOCKET environment to
// $PROBE_OUT, then talks sd_notify as the test asks, and exits 0 on SIGTERM.
//
//   PROBE_OUT=FILE        where to write the report (written before READY=1)
//   PROBE_BARRIER=1       call sd_notify_barrier() first: proves baton closes
//                         fds that arrive with datagrams
//   PROBE_CHILD_READY=1   a forked child sends READY=1 (baton must ignore it:
//                         not the main pid); then the main pid sends
//                         STATUS=child done and sends READY=1 only on SIGUSR1
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_term = 0;
volatile sig_atomic_t g_usr1 = 0;

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return fds;
  int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != own) fds.push_back(fd);
  }
  closedir(dir);
  return fds;
}

void write_report(const char* path, int argc, char** argv, const std::vector<int>& fds) {
  std::FILE* f = std::fopen(path, "we");
  if (!f) return;
  std::fprintf(f, "pid=%d\nfds=", static_cast<int>(getpid()));
  for (size_t i = 0; i < fds.size(); ++i) std::fprintf(f, "%s%d", i ? "," : "", fds[i]);
  std::fprintf(f, "\n");
  for (const char* key :
       {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC",
        "WATCHDOG_PID", "BATON_SERVICE", "BATON_GENERATION", "BATON_INSTANCE"}) {
    const char* v = std::getenv(key);
    std::fprintf(f, "%s=%s\n", key, v ? v : "(unset)");
  }
  for (int i = 1; i < argc; ++i) std::fprintf(f, "arg=%s\n", argv[i]);
  // What a server that logs to "/dev/stderr" does (lighttpd): open it anew.
  for (const char* path : {"/dev/stdout", "/dev/stderr"}) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    std::fprintf(f, "open %s=%s\n", path, fd >= 0 ? "ok" : std::strerror(errno));
    if (fd >= 0) close(fd);
  }
  std::fclose(f);
}

void on_signal(int sig) {
  if (sig == SIGTERM) g_term = 1;
  if (sig == SIGUSR1) g_usr1 = 1;
}

void wait_for(volatile sig_atomic_t& flag) {
  sigset_t none;
  sigemptyset(&none);
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGUSR1);
  sigprocmask(SIG_BLOCK, &blocked, nullptr);
  while (!flag && !g_term) sigsuspend(&none);
  sigprocmask(SIG_UNBLOCK, &blocked, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> fds = open_fds();  // before anything here opens one
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  if (const char* out = std::getenv("PROBE_OUT")) write_report(out, argc, argv, fds);

  if (std::getenv("PROBE_BARRIER")) {
    int rc = sd_notify_barrier(0, 5'000'000);
    if (rc < 0) {
      std::fprintf(stderr, "probe: barrier failed: %s\n", std::strerror(-rc));
      return 3;
    }
    sd_notify(0, "STATUS=barrier passed");
  }
  if (std::getenv("PROBE_CHILD_READY")) {
    pid_t child = fork();
    if (child == 0) {
      sd_notify(0, "READY=1\nSTATUS=ready from a child");
      _exit(0);
    }
    waitpid(child, nullptr, 0);
    sd_notify(0, "STATUS=child done");
    wait_for(g_usr1);
  }
  sd_notifyf(0, "READY=1\nSTATUS=probe %d ready", static_cast<int>(getpid()));
  std::printf("probe: pid %d ready\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  wait_for(g_term);
  return 0;
}

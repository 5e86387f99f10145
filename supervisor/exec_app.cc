// The exec trampoline between uv_spawn and the app.
#include "exec_app.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace baton {

int exec_app(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "baton: __exec is internal: it needs a command\n");
    return 100;
  }
  // Lead a process group of our own (pgid == pid), so that baton's drain
  // and kill signals reach every process the app starts.
  setpgid(0, 0);
  char pid[32];
  std::snprintf(pid, sizeof pid, "%d", static_cast<int>(getpid()));
  if (std::getenv("LISTEN_FDS")) setenv("LISTEN_PID", pid, 1);
  if (std::getenv("WATCHDOG_USEC")) setenv("WATCHDOG_PID", pid, 1);
  if (const char* preload = std::getenv("BATON_LD_PRELOAD")) {
    setenv("LD_PRELOAD", preload, 1);  // the shim: for the app, not for us
    unsetenv("BATON_LD_PRELOAD");
  }
  execvp(argv[2], argv + 2);
  int err = errno;
  std::fprintf(stderr, "baton: cannot execute %s: %s\n", argv[2], std::strerror(err));
  return 127;
}

}  // namespace baton

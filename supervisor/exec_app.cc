// The exec trampoline between uv_spawn and the app.
#include "exec_app.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/protocol.h"
#include "shim_support.h"

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
  if (const char* preload = std::getenv(BATON_ENV_LD_PRELOAD)) {
    setenv("LD_PRELOAD", preload, 1);  // the shim: for the app, not for us
    unsetenv(BATON_ENV_LD_PRELOAD);
  }
  // `__exec --exe PATH ARGV...`: the generation's release, resolved when it
  // was created (a crash restart runs the same files as the first start).
  std::string path;
  if (std::strcmp(argv[2], "--exe") == 0) {
    if (argc < 5) {
      std::fprintf(stderr, "baton: __exec --exe is internal: it needs a path and a command\n");
      return 100;
    }
    path = argv[3];
    argv += 2;
  } else {
    // execv, not execvp: execvp runs a file without a #! line or ELF header
    // under /bin/sh (its ENOEXEC fallback); baton runs exactly the program.
    path = find_executable(argv[2]);
  }
  if (path.empty()) {
    std::fprintf(stderr, "baton: cannot execute %s: %s\n", argv[2],
                 std::strchr(argv[2], '/') ? "no such executable file"
                                           : "not found in PATH (or not executable)");
    return 127;
  }
  if (access(path.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "baton: cannot execute %s (%s): %s\n", argv[2], path.c_str(),
                 std::strerror(errno));
    return 127;
  }
  execv(path.c_str(), argv + 2);
  int err = errno;
  if (err == ENOEXEC) {
    std::fprintf(stderr,
                 "baton: cannot execute %s: it is neither an ELF binary nor a script with a "
                 "#! line (Exec format error)\n",
                 path.c_str());
  } else {
    std::fprintf(stderr, "baton: cannot execute %s: %s\n", path.c_str(), std::strerror(err));
  }
  return 127;
}

}  // namespace baton

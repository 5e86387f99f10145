// Finding and reaping adopted orphans.
#include "orphan_reaper.h"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "file_util.h"

namespace baton {

bool adopts_orphans() {
  int subreaper = 0;
  return getpid() == 1 || (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper != 0);
}

std::vector<pid_t> own_children() {
  std::vector<pid_t> out;
  std::unique_ptr<DIR, int (*)(DIR*)> tasks(opendir("/proc/self/task"), closedir);
  if (!tasks) return out;
  while (dirent* e = readdir(tasks.get())) {
    if (e->d_name[0] == '.') continue;
    auto text = read_whole_file(fmt::format("/proc/self/task/{}/children", e->d_name), "children");
    if (!text) continue;
    const char* p = text->c_str();
    char* end = nullptr;
    for (long pid; (pid = std::strtol(p, &end, 10)) > 0; p = end)
      out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

int reap_orphans(const std::function<bool(pid_t)>& is_spawned) {
  int reaped = 0;
  for (pid_t pid : own_children()) {
    if (is_spawned(pid)) continue;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) ++reaped;
  }
  return reaped;
}

}  // namespace baton

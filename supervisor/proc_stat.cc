// Reading /proc/PID/stat.
#include "proc_stat.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "file_util.h"

namespace baton {

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "re");
  if (!f) return std::nullopt;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  ProcStat st;
  // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice num_threads
  // itrealvalue starttime
  if (!close || std::sscanf(close + 1,
                            " %c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu",
                            &st.state, &st.ppid, &st.pgrp, &st.start_time) != 4) {
    return std::nullopt;
  }
  return st;
}

std::vector<pid_t> ancestors_of(pid_t pid) {
  std::vector<pid_t> out;
  // Bounded: a pid chain is never deeper than the number of processes, and
  // a chain being rewritten while it is read must not loop forever.
  for (int depth = 0; depth < 4096; ++depth) {
    auto st = read_proc_stat(pid);
    if (!st || st->ppid <= 0) break;
    out.push_back(st->ppid);
    pid = st->ppid;
  }
  return out;
}

std::vector<pid_t> self_and_ancestors() {
  std::vector<pid_t> out = ancestors_of(getpid());
  out.push_back(getpid());
  return out;
}

std::string command_name(pid_t pid) {
  auto comm = read_whole_file(fmt::format("/proc/{}/comm", pid), "comm");
  if (!comm) return "";
  while (!comm->empty() && comm->back() == '\n') comm->pop_back();
  return *comm;
}

UniqueFd open_pidfd(pid_t pid) {
  return UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
}

}  // namespace baton

// Sampling a process's fds, RssAnon and children from /proc (see proc_stats.h).
#include "proc_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "support/process.h"

namespace bench {
namespace {

struct CloseDir {
  void operator()(DIR* d) const { closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, CloseDir>;

DirPtr open_dir(const std::string& path) {
  return DirPtr(opendir(path.c_str()));
}

bool all_digits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

/// Entries of /proc/PID/fd, or -1. The listing's own fd is not among them:
/// opendir() runs in this process, not in `pid`.
int count_fds(pid_t pid) {
  DirPtr dir = open_dir("/proc/" + std::to_string(pid) + "/fd");
  if (!dir) return -1;
  int n = 0;
  while (const dirent* e = readdir(dir.get())) n += all_digits(e->d_name) ? 1 : 0;
  return n;
}

/// The "RssAnon:   1234 kB" line of /proc/PID/status, or -1.
int64_t rss_anon_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("RssAnon:")) return std::strtoll(line.c_str() + 8, nullptr, 10);
  }
  return -1;
}

/// State and parent of a process from /proc/PID/stat: "PID (COMM) S PPID ...".
/// COMM may contain spaces and parentheses, so the fields start after the last ')'.
bool read_stat(const std::string& pid, char& state, long& ppid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text;
  if (!std::getline(in, text)) return false;
  const size_t close = text.rfind(')');
  if (close == std::string::npos || close + 4 > text.size()) return false;
  state = text[close + 2];
  ppid = std::strtol(text.c_str() + close + 4, nullptr, 10);
  return true;
}

/// Counts the children of `pid` and the zombies among them (a scan of /proc).
void count_children(pid_t pid, ProcSample& sample) {
  DirPtr proc = open_dir("/proc");
  if (!proc) return;
  while (const dirent* e = readdir(proc.get())) {
    if (!all_digits(e->d_name)) continue;
    char state = '?';
    long ppid = 0;
    if (!read_stat(e->d_name, state, ppid) || ppid != pid) continue;  // gone, or not a child
    ++sample.children;
    if (state == 'Z') ++sample.zombies;
  }
}

}  // namespace

std::vector<std::string> fd_targets(pid_t pid) {
  std::vector<std::string> out;
  for (int fd : support::open_fds(pid)) {
    const std::string target = support::fd_link(pid, fd);
    if (!target.empty()) out.push_back(std::to_string(fd) + " -> " + target);  // else closed since
  }
  return out;
}

std::optional<ProcSample> sample_process(pid_t pid) {
  ProcSample s;
  s.fds = count_fds(pid);
  s.rss_anon_kib = rss_anon_kib(pid);
  if (s.fds < 0 || s.rss_anon_kib < 0) return std::nullopt;
  count_children(pid, s);
  return s;
}

}  // namespace bench

// What a process holds, read from /proc: open fds, anonymous resident memory
// and its children by state. The soak benchmark samples baton's own process
// with it after reloads to see whether anything accumulates. Reads race with
// the process (an fd can close mid-listing, a child can be reaped mid-scan):
// a sample is a snapshot, not an atomic one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bench {

/// One snapshot of a process's resources.
struct ProcSample {
  /// Entries of /proc/PID/fd.
  int fds = 0;
  /// RssAnon from /proc/PID/status, in KiB (the kernel's unit there).
  int64_t rss_anon_kib = 0;
  /// Processes whose PPid is PID, and those of them in state Z (exited, not reaped).
  int children = 0;
  int zombies = 0;
};

/// Samples `pid`; nullopt if it has gone (or /proc cannot be read).
std::optional<ProcSample> sample_process(pid_t pid);

/// "7 -> pipe:[1907438]" for every open fd of `pid`, sorted by fd number
/// (empty if it cannot be read): to say what an fd above the usual count is.
std::vector<std::string> fd_targets(pid_t pid);

}  // namespace bench

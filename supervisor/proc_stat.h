// ProcStat: the few fields of /proc/PID/stat baton reads (state, parent,
// process group). The command name in parentheses may contain spaces and
// ')', so fields are read after the last ')'.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace baton {

struct ProcStat {
  /// 'R', 'S', 'Z', ...
  char state = 0;
  pid_t ppid = -1;
  pid_t pgrp = -1;
  /// When it started, in clock ticks since boot: orders processes by age.
  unsigned long long start_time = 0;
};

/// The process's stat fields; nullopt if it is gone (or unreadable).
std::optional<ProcStat> read_proc_stat(pid_t pid);

/// `pid`'s parent, its parent, and so on up to the first process of the
/// pid namespace: the processes that started baton (its manager, a shell,
/// a socket activator) and may rightly hold its sockets (the fd store).
std::vector<pid_t> ancestors_of(pid_t pid);

/// baton itself and its ancestors: the processes that hold its sockets by
/// right, left out wherever baton looks for other holders.
std::vector<pid_t> self_and_ancestors();

/// The process's command name (/proc/PID/comm); empty if it is gone.
std::string command_name(pid_t pid);

/// A pidfd for `pid` (pidfd_open(2)): signals sent through it can never
/// reach a process that reused the pid. Invalid if the process is gone.
UniqueFd open_pidfd(pid_t pid);

}  // namespace baton

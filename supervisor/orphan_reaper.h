// Reaping adopted orphans. When baton is PID 1 (a container's entrypoint)
// or a child subreaper, processes the app leaves behind become baton's
// children when their parent exits, and they stay zombies until baton
// waits for them. libuv waits only for the processes it spawned, so on
// every SIGCHLD baton waits for each of its other children.
#pragma once

#include <sys/types.h>

#include <functional>
#include <vector>

namespace baton {

/// True when orphans are reparented to this process: it is PID 1 of its
/// pid namespace, or has set PR_SET_CHILD_SUBREAPER.
bool adopts_orphans();

/// This process's children, from /proc/self/task/TID/children of every
/// thread (where the kernel reparents an orphan to). Empty if unreadable.
std::vector<pid_t> own_children();

/// Reaps every child that has exited and for which `is_spawned(pid)` is
/// false (those are libuv's to wait for: reaping one would steal its exit
/// status). Returns how many were reaped. Never blocks.
int reap_orphans(const std::function<bool(pid_t)>& is_spawned);

}  // namespace baton

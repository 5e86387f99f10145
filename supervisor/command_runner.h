// Commands baton runs itself (exec probes, smoke checks, hooks): spawned on
// the loop in a process group of their own, output collected line by line,
// killed when their timeout runs out. The Os seam's run().
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "os.h"

namespace baton {

/// Output lines longer than this are cut to it (at a UTF-8 character
/// boundary); the rest of the line is dropped.
inline constexpr size_t kCommandLineLimit = 1024;

/// Runs `spec` (see Os::run): argv without a shell, exactly spec.env, stdin
/// from /dev/null, stdout and stderr into one pipe (so their lines keep the
/// order they were written in), in a new session and process group.
///
/// `line` (may be empty) gets each line as it arrives, without its "\n" (or
/// "\r\n"); a last line without one too. `done` is called once, on the loop
/// and never from inside run_command: after the process has exited and its
/// output reached EOF, or 1s after the exit when something it left behind
/// still holds the pipe. Outcomes: "exited with status 3", "was killed by
/// SIGSEGV", "timed out after 5s" (its group was SIGKILLed), "could not be
/// started: no such file or directory". `took` runs from the start to the
/// exit.
///
/// Destroying the Pending before `done` SIGKILLs the group (while the main
/// process is not yet reaped) and `done` is never called; the process is
/// still reaped on the loop.
std::unique_ptr<Pending> run_command(uv_loop_t* loop, const CommandSpec& spec,
                                     std::function<void(const std::string&)> line,
                                     std::function<void(CommandResult)> done);

}  // namespace baton

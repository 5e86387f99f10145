// The exec trampoline: `baton __exec COMMAND ARGS...` runs in the freshly
// spawned child, sets LISTEN_PID (and WATCHDOG_PID) to its own pid and execs
// the app, which keeps that pid. It runs before baton initialises anything.
#pragma once

namespace baton {

/// Never returns on success. On failure prints why and returns 127, the
/// shell's "command not found or not executable".
int exec_app(int argc, char** argv);

}  // namespace baton

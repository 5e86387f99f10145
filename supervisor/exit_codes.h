// baton's exit codes, shared by every command and listed in `baton --help`.
#pragma once

namespace baton {

/// Success.
constexpr int kExitOk = 0;
/// The request failed or was refused: invalid config, rolled-back reload.
constexpr int kExitFailed = 1;
/// Wrong command-line usage.
constexpr int kExitUsage = 100;
/// A system call failed: cannot bind, cannot reach the control socket.
constexpr int kExitSystem = 111;

}  // namespace baton

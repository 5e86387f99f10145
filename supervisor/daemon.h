// `baton run`: binds the sockets, starts the supervisor, serves the control
// socket and handles signals until stopped.
#pragma once

#include "config.h"

namespace baton {

/// Runs until stopped; returns the process exit code.
int run_daemon(const Config& config);

/// Logs to stderr in baton's format.
void setup_logging();

}  // namespace baton

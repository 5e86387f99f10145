// `baton verify`: HTTP load at the service's own public socket while it
// reloads, with every failed request counted by kind.
#pragma once

#include <string>

#include "cli.h"

namespace baton {

/// Runs the verification against the baton on `control_path`; returns the
/// exit code (0: no request failed, 1: some did or a reload failed).
int command_verify(const std::string& control_path, const VerifyFlags& flags);

}  // namespace baton

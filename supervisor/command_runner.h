// Commands baton runs itself (exec probes, smoke checks, hooks): spawned on
// the loop in a process group of their own, output collected line by line,
// killed when their timeout runs out. The Os seam's run().
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "os.h"

namespace baton {

/// Runs `spec`; see Os::run.
std::unique_ptr<Pending> run_command(uv_loop_t* loop, const CommandSpec& spec,
                                     std::function<void(const std::string&)> line,
                                     std::function<void(CommandResult)> done);

}  // namespace baton

// Readiness probes on the loop: one http GET or tcp connect against one
// listener of a candidate, bounded by its timeout. The Os seam's probe().
#pragma once

#include <uv.h>

#include <functional>
#include <memory>

#include "os.h"

namespace baton {

/// Starts one attempt; `done` is called exactly once, on the loop, unless
/// the returned Pending is destroyed first (then never).
std::unique_ptr<Pending> start_probe(uv_loop_t* loop, const ProbeSpec& spec,
                                     std::function<void(ProbeResult)> done);

}  // namespace baton

#include "probe.h"

namespace baton {

std::unique_ptr<Pending> start_probe(uv_loop_t*, const ProbeSpec&,
                                     std::function<void(ProbeResult)> done) {
  done(ProbeResult{false, "probes are not built yet"});
  return nullptr;
}

}  // namespace baton

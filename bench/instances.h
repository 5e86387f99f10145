// reload_bench's mode "instances": measures, in one run, (1) the throughput
// of hello with `instances = 4`, `strategy = "rolling"`, `max_surge = 1`
// during rolling reloads against the same service without reloads (claim:
// at least 0.98 of it), a new connection per request and keep-alive; and
// (2) with `standby = "1m"`, how long `baton rollback` takes to bring the
// warm standby back: from the command's start to the first response from
// the standby's pid, and to the command's exit, over several rollbacks,
// none of which may start a process.
#pragma once

#include "instances_report.h"
#include "pairs.h"

namespace bench {

/// Runs both measurements: (1) `o.reloads` rolling reloads per load mode,
/// spread over the measured side's `o.rounds` slices; (2) max(o.reloads, 5)
/// rollbacks. Throws BenchError naming a step that failed, among them a
/// rollback after which `baton status` lists a pid it did not list before.
InstancesResult run_instances(const PairOptions& o);

}  // namespace bench

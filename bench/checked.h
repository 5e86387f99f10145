// reload_bench's mode "checked": measures three claims about checked
// deploys in one run (see README.md, "Checked deploys"): exec → ready of an
// app gated on an http probe is its boot plus at most one probe interval;
// per-generation listeners (the reuseport steering program) cost at most 1 %
// of a shared listener's new-connection rate; hello under baton with the
// probe config serves at least 0.98 of hello alone.
#pragma once

#include "checked_report.h"
#include "pairs.h"

namespace bench {

/// Runs the three measurements (claim 1: `o.reloads` reloads; claims 2 and
/// 3: pairs of `o.rounds` slices); throws BenchError naming a step that failed.
CheckedResult run_checked(const PairOptions& o);

}  // namespace bench

// reload_bench's mode "checked": measures three claims about checked
// deploys in one run (see README.md, "Checked deploys"): exec → ready of an
// app gated on an http probe is its boot plus at most one probe interval;
// per-generation listeners (the reuseport steering program) cost at most 1 %
// of a shared listener's new-connection rate; hello under baton with the
// probe config serves at least 0.98 of hello alone.
#pragma once

#include "checked_report.h"
#include "services.h"

namespace bench {

struct CheckedOptions {
  Binaries bins;
  int connections = 8;  // client threads
  Millis duration{};    // load per case, split into `rounds` slices
  int reloads = 5;      // claim 1
  int rounds = 6;       // claims 2 and 3: slices of each case, alternating
};

/// Runs the three measurements; throws BenchError naming a step that failed.
CheckedResult run_checked(const CheckedOptions& o);

}  // namespace bench

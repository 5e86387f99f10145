// reload_bench's pairs of cases (modes checked and instances): two services
// up at once, a baseline and a measured one, and the load moved between
// them in alternating slices (A B, B A, A B, ...), so that the machine's
// other work, which comes and goes over seconds, weighs on both alike.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "report.h"
#include "services.h"

namespace bench {

/// What the modes built on pairs of cases run with.
struct PairOptions {
  Binaries bins;
  int connections = 8;  // client threads
  Millis duration{};    // load per side, split into `rounds` slices
  int reloads = 5;
  int rounds = 6;  // slices of each side, alternating
};

/// One side of a pair of cases: a name, and hello alone or under baton.
struct Side {
  std::string name;
  bool under_baton = false;
  HelloConfig hello{};
};

/// Called on the bench's thread while one of the measured side's slices of
/// load runs (`slice`: 0 to rounds - 1, started at `started`, `length`
/// long); it may outlast the slice (the next one then starts after it).
using SliceHook = std::function<void(BatonService& measured, int slice, Clock::time_point started,
                                     Millis length)>;

/// `baseline` and `measured` both up, and `o.rounds` slices of load on each
/// (duration / rounds long) in alternating order. Returns the two cases,
/// baseline first, with every slice's req/s. `during_measured` (if set; the
/// measured side must then run under baton) runs during each measured slice.
/// Progress goes to stderr tagged "[TAG/MODE]"; a failure's message names
/// the pair.
std::vector<CaseResult> run_pair(const PairOptions& o, const std::string& tag,
                                 const std::string& mode, const Side& baseline,
                                 const Side& measured, const SliceHook& during_measured = {});

}  // namespace bench

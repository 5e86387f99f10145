// reload_bench's reports of pairs of cases (modes checked and instances, see
// pairs.h): the pair's table (req/s over all slices and per slice, failed
// requests, latency), and a ratio claim (measured req/s over the
// baseline's, ≥ a bound) with its verdict.
#pragma once

#include <string>
#include <vector>

#include "report.h"

namespace bench {

/// One ratio claim: the measured case's req/s over the baseline's (all
/// slices), and the ratios of the slice pairs (a baseline slice and a
/// measured slice next to each other in time): their mean, its 95 %
/// confidence interval (Student's t), and their range, which show how much
/// of the difference this run's noise can hide.
struct RatioClaim {
  double ratio = 0;
  size_t pairs = 0;
  double pair_mean = 0, low = 0, high = 0;  // interval of the mean pair ratio
  double pair_min = 0, pair_max = 0;
};

/// The claim of the pair of cases under load `mode` (baseline and measured).
RatioClaim ratio_claim(const std::vector<CaseResult>& cases, const std::string& mode);

/// "**yes**" or "**no**" when the slice pairs' interval is wholly on one
/// side of the bound; otherwise "**not resolved**", saying on which side the
/// ratio is: this run's noise cannot tell.
std::string verdict(const RatioClaim& r, double bound);

/// The pairs' table (a row per case), then examples of failed requests.
void print_pair_table(const std::vector<CaseResult>& cases);

/// "- MODE: **ratio R** (all slices); slice pairs: mean, 95 % interval,
/// range; ≥ bound: verdict".
void print_ratio_line(const std::vector<CaseResult>& cases, const std::string& mode, double bound);

/// A row of a claims table: "| claim | R (low–high) | ≥ bound | verdict |".
void print_ratio_row(const std::string& claim, const std::vector<CaseResult>& cases,
                     const std::string& mode, double bound);

}  // namespace bench

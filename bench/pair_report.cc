// Reports of pairs of cases (see pair_report.h).
#include "pair_report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace bench {
namespace {

/// Two-sided 95 % Student's t for `df` degrees of freedom (2.0 beyond 10).
double t95(size_t df) {
  static constexpr double kT[] = {12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23};
  return df >= 1 && df <= 10 ? kT[df - 1] : 2.0;
}

void summarize_pairs(const std::vector<double>& pairs, RatioClaim& r) {
  r.pairs = pairs.size();
  if (pairs.empty()) return;
  double sum = 0, squares = 0;
  for (double p : pairs) sum += p;
  r.pair_mean = sum / static_cast<double>(pairs.size());
  for (double p : pairs) squares += (p - r.pair_mean) * (p - r.pair_mean);
  const double n = static_cast<double>(pairs.size());
  const double half =
      pairs.size() < 2 ? 0 : t95(pairs.size() - 1) * std::sqrt(squares / (n - 1) / n);
  r.low = r.pair_mean - half;
  r.high = r.pair_mean + half;
  r.pair_min = *std::min_element(pairs.begin(), pairs.end());
  r.pair_max = *std::max_element(pairs.begin(), pairs.end());
}

/// "8342 8150 6721": req/s of each slice, in the order they ran.
std::string slices_cell(const CaseResult& c) {
  std::string out;
  for (double v : c.slice_rps) out += fmt::format("{}{:.0f}", out.empty() ? "" : " ", v);
  return out;
}

}  // namespace

RatioClaim ratio_claim(const std::vector<CaseResult>& cases, const std::string& mode) {
  const CaseResult* sides[2] = {nullptr, nullptr};
  for (const auto& c : cases) {
    if (c.mode == mode) sides[c.baseline ? 0 : 1] = &c;
  }
  RatioClaim r;
  if (!sides[0] || !sides[1] || requests_per_second(*sides[0]) <= 0) return r;
  r.ratio = requests_per_second(*sides[1]) / requests_per_second(*sides[0]);
  const auto& base = sides[0]->slice_rps;
  const auto& measured = sides[1]->slice_rps;
  std::vector<double> pairs;
  for (size_t i = 0; i < std::min(base.size(), measured.size()); ++i) {
    if (base[i] > 0) pairs.push_back(measured[i] / base[i]);
  }
  summarize_pairs(pairs, r);
  return r;
}

std::string verdict(const RatioClaim& r, double bound) {
  if (r.pairs >= 2 && r.low >= bound) return "**yes**";
  if (r.pairs >= 2 && r.high < bound) return "**no**";
  return r.ratio >= bound ? "**not resolved** (the ratio meets it; the interval reaches below)"
                          : "**not resolved** (the ratio is below; the interval reaches above)";
}

void print_pair_table(const std::vector<CaseResult>& cases) {
  fmt::print("| load | case | req/s | req/s per slice | failed | p50 / p99 / max | app pids |\n");
  fmt::print("|:--|:--|--:|--:|--:|--:|--:|\n");
  for (const auto& c : cases) {
    fmt::print("| {} | {} | {:.0f} | {} | {} | {} | {} |\n", c.mode, c.name, requests_per_second(c),
               slices_cell(c), failures_cell(c), latency_cell(c.steady), c.app_pids);
  }
  fmt::print("\n");
  for (const auto& c : cases) {
    if (c.failed == 0) continue;
    fmt::print("Failed requests in {} / {}, examples:\n\n", c.mode, c.name);
    for (const auto& e : c.failure_examples) fmt::print("- `{}`\n", e);
    fmt::print("\n");
  }
}

void print_ratio_line(const std::vector<CaseResult>& cases, const std::string& mode, double bound) {
  const RatioClaim r = ratio_claim(cases, mode);
  fmt::print(
      "- {}: **ratio {:.3f}** (all slices); slice pairs: mean {:.3f}, 95 % interval "
      "{:.3f}–{:.3f}, range {:.3f}–{:.3f} ({} pairs); ≥ {:.2f}: {}\n",
      mode, r.ratio, r.pair_mean, r.low, r.high, r.pair_min, r.pair_max, r.pairs, bound,
      verdict(r, bound));
}

void print_ratio_row(const std::string& claim, const std::vector<CaseResult>& cases,
                     const std::string& mode, double bound) {
  const RatioClaim c = ratio_claim(cases, mode);
  fmt::print("| {} | {:.3f} ({:.3f}–{:.3f}) | ≥ {:.2f} | {} |\n", claim, c.ratio, c.low, c.high,
             bound, verdict(c, bound));
}

}  // namespace bench

// Pairs of cases in alternating slices (see pairs.h).
#include "pairs.h"

#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "closed_loop.h"

namespace bench {
namespace {

/// A side's service, up for the whole pair.
class SideService {
 public:
  SideService(const Binaries& bins, const Side& side) {
    if (side.under_baton) {
      baton_.emplace(bins, side.hello);
    } else {
      alone_.emplace(bins, AloneSession::kLikeBaton);
      alone_->wait_serving();
    }
  }
  const std::string& address() const { return baton_ ? baton_->address() : alone_->address(); }
  /// The service under baton; nullptr for hello alone.
  BatonService* baton() { return baton_ ? &*baton_ : nullptr; }
  void stop() { baton_ ? baton_->stop() : alone_->stop(); }

 private:
  std::optional<BatonService> baton_;
  std::optional<HelloAlone> alone_;
};

std::vector<CaseResult> run_slices(const PairOptions& o, const std::string& tag,
                                   const std::string& mode, const Side& baseline,
                                   const Side& measured, const SliceHook& during_measured) {
  const Side* sides[2] = {&baseline, &measured};
  SideService services[2] = {{o.bins, baseline}, {o.bins, measured}};
  if (during_measured && !services[1].baton()) {
    throw BenchError("the measured side of a pair with reloads must run under baton");
  }
  load::LoadResult totals[2];
  std::vector<double> slice_rps[2];
  const Millis slice = o.duration / o.rounds;
  for (int round = 0; round < o.rounds; ++round) {
    for (int k = 0; k < 2; ++k) {
      const int side = round % 2 == 0 ? k : 1 - k;
      const Clock::time_point started = Clock::now();
      auto run = start_load(services[side].address(), mode, o.connections, slice);
      if (side == 1 && during_measured)
        during_measured(*services[1].baton(), round, started, slice);
      sleep_until(started + slice);
      load::LoadResult part = run->wait();
      const double seconds = std::chrono::duration<double>(part.elapsed).count();
      slice_rps[side].push_back(seconds > 0 ? static_cast<double>(part.ok) / seconds : 0);
      add_load(totals[side], std::move(part));
    }
  }
  std::vector<CaseResult> cases;
  for (int side = 0; side < 2; ++side) {
    services[side].stop();
    CaseResult c = summarize_case(mode, sides[side]->name, std::move(totals[side]), {});
    c.baseline = side == 0;
    c.under_baton = sides[side]->under_baton;
    c.slice_rps = std::move(slice_rps[side]);
    std::fprintf(stderr, "reload_bench: [%s/%s] %s: %.0f req/s, %llu failed\n", tag.c_str(),
                 mode.c_str(), c.name.c_str(), requests_per_second(c),
                 static_cast<unsigned long long>(c.failed));
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace

std::vector<CaseResult> run_pair(const PairOptions& o, const std::string& tag,
                                 const std::string& mode, const Side& baseline,
                                 const Side& measured, const SliceHook& during_measured) {
  const std::string what =
      fmt::format("[{}/{}] {} against {}", tag, mode, measured.name, baseline.name);
  std::fprintf(stderr, "reload_bench: %s, %d slices each ...\n", what.c_str(), o.rounds);
  try {
    return run_slices(o, tag, mode, baseline, measured, during_measured);
  } catch (const std::exception& e) {
    throw BenchError(fmt::format("{}: {}", what, e.what()));
  }
}

}  // namespace bench

// reload_bench: measures what a `baton reload` costs the clients of a
// service. In one invocation it puts closed-loop HTTP load (tests/load's
// load_client) on the test app (tests/apps/test_app.cc, examples/hello with its fault switches) on
// loopback in four cases per mode:
//   1. baseline: hello alone, socket activated by the bench (no baton);
//   2. hello under baton, no reloads;
//   3. hello under baton with --reloads evenly spaced reloads;
//   4. the same with every generation booting in 1.5 s (HELLO_BOOT_DELAY_MS);
// and, in mode "shim" (one connection per request), examples/legacy, which
// binds its own port: alone, under `baton run` with `shim = true`, and the
// same with --reloads reloads;
// and, in mode "checked", three claims about checked deploys: exec → ready
// of an app gated on an http probe is its boot time plus at most one probe
// interval; per-generation listeners (the reuseport steering program) cost at
// most 1 % of the new-connection rate of a shared socket; and hello under
// baton with the probe config serves at least 0.98 of hello alone;
// and, in mode "instances", hello with 4 instances during rolling reloads
// against the same without reloads (at least 0.98 of it), and how long
// `baton rollback` to a warm standby takes until the standby answers;
// and prints markdown tables: throughput, failed requests, latency inside and
// outside reload windows, per-step reload timings, and ratios against the
// baseline of the same run (the machines are shared and noisy).
//
// Exit codes: 0 done; 1 a step failed (the message names it); 2 usage;
// 3 the tables were printed but some requests failed under baton.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "args.h"
#include "checked.h"
#include "closed_loop.h"
#include "instances.h"
#include "interrupt.h"
#include "load_client.h"
#include "report.h"
#include "services.h"
#include "support/loopback.h"

namespace bench {
namespace {

using namespace std::chrono_literals;

/// A reload window lasts until this long after `baton reload` returned.
constexpr Millis kWindowTail = 500ms;
constexpr int kSlowBootMs = 1500;
/// Modes checked and instances: the shortest slice of load (--duration-per-case / --rounds).
constexpr Millis kMinSlice = 250ms;

struct Options {
  Millis duration = 12s;
  int connections = 8;
  int reloads = 5;
  int rounds = 6;  // modes checked and instances: alternating slices of each pair of cases
  std::vector<std::string> modes = all_modes();

  static std::vector<std::string> all_modes() {
    if (have_legacy()) return {"close", "keepalive", "shim", "checked", "instances"};
    return {"close", "keepalive", "checked", "instances"};
  }
  bool has_mode(const std::string& mode) const {
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  }
  /// A mode built on pairs of cases in alternating slices.
  bool has_pairs() const { return has_mode("checked") || has_mode("instances"); }
  static bool have_legacy() {
#ifdef LEGACY_BIN
    return true;
#else
    return false;
#endif
  }
};

struct CaseSpec {
  std::string name;
  bool under_baton = false;
  bool legacy = false;  // examples/legacy (alone, or under baton with the shim)
  int reloads = 0;
  HelloConfig hello;  // under baton, not legacy
};

constexpr const char* kUsage =
    "usage: reload_bench [--duration-per-case 12s] [--connections 8] [--reloads 5]\n"
    "                    [--rounds 6]\n"
    "                    [--mode close|keepalive|shim|checked|instances|both|all]\n"
    "Puts HTTP load on tests/apps/test_app on loopback, alone and under baton with and\n"
    "without reloads, and prints markdown tables. Mode shim: examples/legacy (binds\n"
    "its own port) alone and under `baton run --shim`, one connection per request.\n"
    "Mode checked: reloads gated on an http probe, per-generation listeners against\n"
    "shared ones, and hello under baton with the probe against hello alone (each\n"
    "pair's load in --rounds alternating slices). Mode instances: 4 instances during\n"
    "rolling reloads against the same without reloads (alternating slices), and\n"
    "`baton rollback` to a warm standby, timed until the standby answers. both =\n"
    "close and keepalive; all = close, keepalive, shim, checked and instances.\n"
    "Defaults: 12s, 8, 5, 6, all.\n"
    "Durations: 500ms, 12s, 1m. Exit codes: 0 done, 1 a step failed, 2 usage,\n"
    "3 some requests failed under baton.\n";

// ---- Command line --------------------------------------------------------------

/// Applies one "--name value"; false if the value is invalid.
bool apply_option(Options& o, const std::string& name, const std::string& value) {
  if (name == "--duration-per-case") {
    const auto d = parse_duration(value);
    if (!d || *d < 1s || *d > 10min) return false;
    o.duration = *d;
  } else if (name == "--connections" || name == "--reloads" || name == "--rounds") {
    const auto n = parse_int(value, 1, name == "--connections" ? 1024 : 100);
    if (!n) return false;
    (name == "--reloads" ? o.reloads : name == "--rounds" ? o.rounds : o.connections) = *n;
  } else if (name == "--mode") {
    if (value == "all") {
      o.modes = {"close", "keepalive", "shim", "checked", "instances"};
    } else if (value == "both") {
      o.modes = {"close", "keepalive"};
    } else if (value == "close" || value == "keepalive" || value == "shim" || value == "checked" ||
               value == "instances") {
      o.modes = {value};
    } else {
      return false;
    }
    if (!Options::have_legacy() && o.has_mode("shim")) {
      std::fprintf(stderr, "reload_bench: this build has no examples/legacy (mode shim)\n");
      return false;
    }
  } else {
    return false;
  }
  return true;
}

/// Parses argv; nullopt (after printing why) on bad usage.
std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (!apply_option(o, arg, value)) {
      std::fprintf(stderr, "reload_bench: bad option %s %s\n%s", arg.c_str(), value.c_str(),
                   kUsage);
      return std::nullopt;
    }
  }
  if (o.has_pairs() && o.duration / o.rounds < kMinSlice) {
    std::fprintf(stderr, "reload_bench: --duration-per-case / --rounds is under %lld ms\n%s",
                 static_cast<long long>(kMinSlice.count()), kUsage);
    return std::nullopt;
  }
  return o;
}

// ---- Cases -----------------------------------------------------------------------

const Binaries& binaries() {
#ifdef LEGACY_BIN
  static const Binaries bins{BATON_BIN, HELLO_BIN, LEGACY_BIN, SHIM_LIB};
#else
  static const Binaries bins{BATON_BIN, HELLO_BIN, "", ""};
#endif
  return bins;
}

/// The app alone (HelloAlone or LegacyAlone): serve, load, stop.
template <class App>
load::LoadResult load_app_alone(const Options& o, const std::string& mode) {
  App app(binaries());
  app.wait_serving();
  load::LoadResult load = run_load(app.address(), mode, o.connections, o.duration);
  app.stop();
  return load;
}

CaseResult run_baseline(const Options& o, const std::string& mode, const CaseSpec& spec) {
  load::LoadResult load =
      spec.legacy ? load_app_alone<LegacyAlone>(o, mode) : load_app_alone<HelloAlone>(o, mode);
  CaseResult c = summarize_case(mode, spec.name, std::move(load), {});
  c.baseline = true;
  return c;
}

/// Runs the reloads, evenly spaced through the load run that began at `started`.
std::vector<ReloadTiming> run_reloads(BatonService& service, const Options& o, int reloads,
                                      Clock::time_point started, std::vector<Window>& windows) {
  std::vector<ReloadTiming> timings;
  const auto spacing = o.duration / (reloads + 1);
  for (int i = 0; i < reloads; ++i) {
    sleep_until(started + spacing * (i + 1));
    ReloadTiming t = service.reload();
    windows.push_back({t.requested, t.returned + kWindowTail});
    sleep_until(t.returned + kWindowTail);
    service.wait_drained(t);
    t.under_load = t.returned < started + o.duration;
    timings.push_back(t);
  }
  return timings;
}

CaseResult run_baton_case(const Options& o, const std::string& mode, const CaseSpec& spec) {
  BatonService service(binaries(), spec.hello, spec.legacy ? support::free_port() : 0);
  const Clock::time_point started = Clock::now();
  auto run = start_load(service.address(), mode, o.connections, o.duration);
  std::vector<Window> windows;
  std::vector<ReloadTiming> timings = run_reloads(service, o, spec.reloads, started, windows);
  sleep_until(started + o.duration);
  load::LoadResult load = run->wait();
  run.reset();
  service.stop();
  CaseResult c = summarize_case(mode, spec.name, std::move(load), windows);
  c.under_baton = true;
  c.boot_delay_ms = spec.hello.boot_delay_ms;
  c.reloads = std::move(timings);
  return c;
}

std::vector<CaseSpec> case_specs(const Options& o, const std::string& mode) {
  if (mode == "shim") {
    return {{"baseline: legacy alone", false, true, 0, {}},
            {"baton --shim, no reloads", true, true, 0, {}},
            {fmt::format("baton --shim + {} reloads", o.reloads), true, true, o.reloads, {}}};
  }
  return {{"baseline: hello alone", false, false, 0, {}},
          {"baton, no reloads", true, false, 0, {}},
          {fmt::format("baton + {} reloads", o.reloads), true, false, o.reloads, {}},
          {fmt::format("baton + {} reloads, {:g} s boot", o.reloads, kSlowBootMs / 1000.0),
           true,
           false,
           o.reloads,
           {.boot_delay_ms = kSlowBootMs}}};
}

void log_progress(const CaseResult& c) {
  std::fprintf(stderr, "reload_bench: [%s] %s: %.0f req/s, %llu failed, %zu app pids\n",
               c.mode.c_str(), c.name.c_str(),
               c.seconds > 0 ? static_cast<double>(c.ok) / c.seconds : 0.0,
               static_cast<unsigned long long>(c.failed), c.app_pids);
}

/// Runs one case under load `mode`, with progress on stderr.
CaseResult run_case(const Options& o, const std::string& mode, const CaseSpec& spec) {
  std::fprintf(stderr, "reload_bench: [%s] %s ...\n", mode.c_str(), spec.name.c_str());
  try {
    CaseResult c = spec.under_baton ? run_baton_case(o, mode, spec) : run_baseline(o, mode, spec);
    log_progress(c);
    return c;
  } catch (const std::exception& e) {
    throw BenchError(fmt::format("[{}] {}: {}", mode, spec.name, e.what()));
  }
}

/// Every mode but "checked" and "instances", in order.
std::vector<CaseResult> run_all(const Options& o) {
  std::vector<CaseResult> results;
  for (const auto& mode : o.modes) {
    if (mode == "checked" || mode == "instances") continue;
    for (const auto& spec : case_specs(o, mode)) results.push_back(run_case(o, mode, spec));
  }
  return results;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  const std::optional<Options> options = parse_args(argc, argv);
  if (!options) return 2;
  try {
    const std::vector<CaseResult> cases = run_all(*options);
    const PairOptions pair_options{binaries(), options->connections, options->duration,
                                   options->reloads, options->rounds};
    const std::optional<CheckedResult> checked =
        options->has_mode("checked") ? std::optional(run_checked(pair_options)) : std::nullopt;
    const std::optional<InstancesResult> instances =
        options->has_mode("instances") ? std::optional(run_instances(pair_options)) : std::nullopt;
    const RunInfo info{machine_description(),
                       std::chrono::duration<double>(options->duration).count(),
                       options->connections, options->reloads};
    print_report(info, cases);
    if (checked) print_checked_report(*checked);
    if (instances) print_instances_report(*instances);
    for (const auto& c : cases) {
      if (c.mode == "shim" && c.under_baton && c.failed > 0) {
        std::fprintf(stderr, "reload_bench: %llu requests FAILED under the shim in \"%s\"\n",
                     static_cast<unsigned long long>(c.failed), c.name.c_str());
        for (const auto& e : c.failure_examples) std::fprintf(stderr, "  %s\n", e.c_str());
      }
    }
    const uint64_t failed = failed_under_baton(cases) +
                            (checked ? failed_under_baton(*checked) : 0) +
                            (instances ? failed_under_baton(*instances) : 0);
    if (failed > 0) {
      std::fprintf(stderr,
                   "reload_bench: %llu requests FAILED under baton (see \"Failed requests\")\n",
                   static_cast<unsigned long long>(failed));
      return 3;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reload_bench: FAILED: %s\n", e.what());
    return 1;
  }
}

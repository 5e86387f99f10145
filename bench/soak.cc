// soak: many reloads back to back under load, to see whether baton keeps
// anything per reload. It runs the test app (tests/apps/test_app.cc) under `baton run`, puts two
// concurrent closed-loop loads on it over loopback (a new connection per
// request, and keep-alive), and runs `baton reload --wait` --reloads times in
// a row. After every --sample-every reloads it samples baton's own process
// (open fds, RssAnon, zombie children), then prints markdown tables and
// checks that nothing failed and nothing accumulated (see soak_report.h).
//
// Exit codes: 0 every check passed; 1 a step failed (the message names it);
// 2 usage; 3 the report was printed but a check failed.
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "args.h"
#include "interrupt.h"
#include "load_client.h"
#include "proc_stats.h"
#include "services.h"
#include "soak_report.h"

namespace bench {
namespace {

using namespace std::chrono_literals;

/// Load before the start sample, and quiet time before the end sample (no
/// load, no control request: nothing in flight at baton).
constexpr Millis kWarmUp = 1s;
constexpr Millis kSettle = 500ms;
constexpr int kQuickReloads = 50;
constexpr size_t kMaxFailureMessages = 5;

struct Options {
  int reloads = 1000;
  int connections = 4;  // per load mode
  int sample_every = 1;
  std::vector<std::string> modes = {"close", "keepalive"};
  Millis time_limit = 10min;  // for the reload loop
};

constexpr const char* kUsage =
    "usage: soak [--reloads 1000 | --quick] [--connections 4] [--sample-every 1]\n"
    "            [--mode close|keepalive|both] [--time-limit 10m]\n"
    "Runs tests/apps/test_app under baton with load on loopback (both modes at once by\n"
    "default, --connections client threads each) and reloads it --reloads times back\n"
    "to back (--quick: 50), sampling baton's fds, RssAnon and zombie children after\n"
    "every --sample-every reloads. Prints markdown tables.\n"
    "Exit codes: 0 every check passed, 1 a step failed, 2 usage, 3 a check failed\n"
    "(a failed request or reload, fds or RssAnon above the start, a zombie left).\n";

// ---- Command line --------------------------------------------------------------

/// Applies one "--name value"; false if the value is invalid.
bool apply_option(Options& o, const std::string& name, const std::string& value) {
  if (name == "--reloads" || name == "--connections" || name == "--sample-every") {
    const auto n = parse_int(value, 1, name == "--reloads" ? 100000 : 1024);
    if (!n) return false;
    (name == "--reloads"       ? o.reloads
     : name == "--connections" ? o.connections
                               : o.sample_every) = *n;
  } else if (name == "--mode") {
    if (value == "both") {
      o.modes = {"close", "keepalive"};
    } else if (value == "close" || value == "keepalive") {
      o.modes = {value};
    } else {
      return false;
    }
  } else if (name == "--time-limit") {
    const auto d = parse_duration(value);
    if (!d || *d < 1s || *d > 600min) return false;
    o.time_limit = *d;
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
    if (arg == "--quick") {
      o.reloads = kQuickReloads;
      continue;
    }
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (!apply_option(o, arg, value)) {
      std::fprintf(stderr, "soak: bad option %s %s\n%s", arg.c_str(), value.c_str(), kUsage);
      return std::nullopt;
    }
  }
  return o;
}

// ---- The run ---------------------------------------------------------------------

/// Until stop(); bounded by the reload loop's limit plus a margin.
std::unique_ptr<load::LoadRun> start_load(const Options& o, const std::string& address,
                                          const std::string& mode) {
  load::LoadOptions options;
  options.address = address;
  options.mode = mode == "keepalive" ? load::Mode::kKeepAlive : load::Mode::kConnectionPerRequest;
  options.connections = o.connections;
  options.max_duration = o.time_limit + 2min;
  options.request_timeout = 5s;
  auto started = load::LoadRun::start(options);
  if (!started) throw BenchError("cannot start the load client: " + started.error);
  return std::move(started.run);
}

ProcSample sample_baton(const BatonService& service) {
  const auto s = sample_process(service.pid());
  if (!s) throw BenchError(fmt::format("cannot read /proc/{} (baton gone?)", service.pid()));
  return *s;
}

void log_progress(int done, int total, const ProcSample& s) {
  std::fprintf(stderr, "soak: %d/%d reloads; baton: %d fds, RssAnon %lld KiB, %d children (%d Z)\n",
               done, total, s.fds, static_cast<long long>(s.rss_anon_kib), s.children, s.zombies);
}

/// Counts a sample with more fds than the start; lists the first one's fds.
void note_excess_fds(const BatonService& service, SoakResult& r) {
  if (r.samples.back().proc.fds <= r.samples.front().proc.fds) return;
  ++r.excess_fd_samples;
  if (r.first_excess_fds.empty()) r.first_excess_fds = fd_targets(service.pid());
}

/// One reload (counted as done or failed) and, if due, a sample.
void reload_once(BatonService& service, int index, SoakResult& r) {
  ReloadOutcome o = service.try_reload(true);
  if (o.ok) {
    service.wait_drained(o.timing);
    r.reloads.push_back(o.timing);
  } else {
    ++r.reloads_failed;
    if (r.reload_failures.size() < kMaxFailureMessages) {
      r.reload_failures.push_back(fmt::format("reload {}: {}", index, o.output));
    }
  }
  if (index % r.sample_every == 0 || index == r.reloads_requested) {
    r.samples.push_back({index, sample_baton(service)});
    note_excess_fds(service, r);
  }
  if (index % 100 == 0) log_progress(index, r.reloads_requested, r.samples.back().proc);
}

void run_reloads(BatonService& service, const Options& o, SoakResult& r) {
  const Clock::time_point started = Clock::now();
  const Clock::time_point deadline = started + o.time_limit;
  for (int i = 1; i <= o.reloads; ++i) {
    throw_if_interrupted();
    if (Clock::now() >= deadline) {
      r.stopped_early = fmt::format("time limit ({} s) reached after {} of {} reloads",
                                    o.time_limit.count() / 1000, i - 1, o.reloads);
      break;
    }
    reload_once(service, i, r);
  }
  r.reload_loop_seconds = std::chrono::duration<double>(Clock::now() - started).count();
}

SoakResult run_soak(const Options& o) {
  const Clock::time_point started = Clock::now();
  SoakResult r;
  r.machine = machine_description();
  r.reloads_requested = o.reloads;
  r.sample_every = o.sample_every;
  BatonService service({BATON_BIN, HELLO_BIN, "", ""}, HelloConfig{});
  std::vector<std::unique_ptr<load::LoadRun>> runs;
  std::set<int> app_pids;
  for (const auto& mode : o.modes) runs.push_back(start_load(o, service.address(), mode));
  sleep_until(Clock::now() + kWarmUp);
  r.samples.push_back({0, sample_baton(service)});
  r.start_fds = fd_targets(service.pid());
  log_progress(0, o.reloads, r.samples.back().proc);
  run_reloads(service, o, r);
  for (auto& run : runs) run->stop();
  for (size_t i = 0; i < runs.size(); ++i) {
    r.loads.push_back({o.modes[i], o.connections, runs[i]->wait()});
    for (const auto& [pid, n] : r.loads.back().result.pids) app_pids.insert(pid);
  }
  app_pids.erase(0);
  r.app_pids = app_pids.size();
  runs.clear();
  sleep_until(Clock::now() + kSettle);
  r.end = sample_baton(service);
  service.stop();
  r.total_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return r;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  const std::optional<Options> options = parse_args(argc, argv);
  if (!options) return 2;
  try {
    const SoakResult result = run_soak(*options);
    const std::vector<SoakCheck> checks = soak_checks(result);
    print_soak_report(result, checks);
    int failed = 0;
    for (const auto& c : checks) {
      if (c.ok) continue;
      std::fprintf(stderr, "soak: FAILED: %s\n", c.what.c_str());
      ++failed;
    }
    return failed > 0 ? 3 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "soak: FAILED: %s\n", e.what());
    return 1;
  }
}

// loadgen: command-line front end of load_client. Loads a loopback HTTP server
// for a bounded duration (SIGINT/SIGTERM end it early) and prints a summary,
// human-readable or JSON, optionally with a per-request latency CSV.

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "load_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitFailures = 1;
constexpr int kExitUsage = 100;
constexpr int kExitSystem = 111;

constexpr char kUsage[] =
    "usage: loadgen --address ADDR --duration D [--path /] [--mode close|keepalive]\n"
    "               [--connections N] [--timeout D] [--json] [--latencies FILE]\n"
    "  ADDR: 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or a unix socket path (loopback only)\n"
    "  D: a duration like 500ms, 10s, 2m\n"
    "exit: 0 no request failed, 1 some failed, 100 usage error, 111 system error\n";

/// The parsed command line. Invariant after parse_args: address and duration set.
struct Args {
  load::LoadOptions options;
  bool json = false;
  /// Empty: no latency CSV.
  std::string latencies_file;
};

/// Parses "500ms", "10s", "2m" (a positive integer with a unit).
std::optional<Millis> parse_duration(std::string_view text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || value <= 0 || value > 86400000) {
    return std::nullopt;
  }
  const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  if (unit == "ms") return Millis(value);
  if (unit == "s") return Millis(value * 1000);
  if (unit == "m") return Millis(value * 60000);
  return std::nullopt;
}

std::optional<int> parse_count(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

/// Applies one "--flag value" pair; returns an error message or "".
std::string apply_flag(std::string_view flag, const std::string& value, Args& args) {
  load::LoadOptions& o = args.options;
  if (flag == "--address") {
    o.address = value;
  } else if (flag == "--path") {
    o.path = value;
  } else if (flag == "--mode") {
    if (value != "close" && value != "keepalive") return "--mode must be close or keepalive";
    o.mode = value == "close" ? load::Mode::kConnectionPerRequest : load::Mode::kKeepAlive;
  } else if (flag == "--connections") {
    const auto n = parse_count(value);
    if (!n || *n < 1) return "--connections must be a positive integer, not " + value;
    o.connections = *n;
  } else if (flag == "--duration" || flag == "--timeout") {
    const auto d = parse_duration(value);
    if (!d) return fmt::format("{} must be a duration like 500ms, 10s or 2m, not {}", flag, value);
    (flag == "--duration" ? o.duration : o.request_timeout) = *d;
  } else if (flag == "--latencies") {
    args.latencies_file = value;
  } else {
    return fmt::format("unknown option {}", flag);
  }
  return "";
}

/// Parses argv (without the program name) into `args`; returns an error message or "".
std::string parse_args(const std::vector<std::string>& argv, Args& args) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string flag = argv[i];
    if (flag == "--json") {
      args.json = true;
      continue;
    }
    std::optional<std::string> value;
    if (const size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (flag.starts_with("--") && i + 1 < argv.size()) {
      value = argv[++i];
    }
    if (!flag.starts_with("--")) return fmt::format("unexpected argument {}", flag);
    if (!value) return fmt::format("{} needs a value", flag);
    if (std::string why = apply_flag(flag, *value, args); !why.empty()) return why;
  }
  if (args.options.address.empty()) return "--address is required";
  if (args.options.duration.count() == 0) return "--duration is required";
  args.options.max_duration = args.options.duration;
  args.options.record_latencies = true;
  return "";
}

// ---------------------------------------------------------------------------
// Running.

/// Waits until `end` or until SIGINT/SIGTERM (blocked in every thread) arrives.
/// Returns false if a signal cut the run short.
bool wait_for_end_or_signal(const sigset_t& signals, Clock::time_point end) {
  for (;;) {
    const auto left = end - Clock::now();
    if (left <= Clock::duration::zero()) return true;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return false;
    // EAGAIN (timed out) or EINTR: loop and re-check the clock.
  }
}

/// Latency percentiles (ms, nearest rank) over successful requests; 0 when there are none.
struct Latency {
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

Latency latency_of(const load::LoadResult& r) {
  std::vector<int64_t> us;
  for (const auto& s : r.samples) {
    if (s.ok) us.push_back(s.latency.count());
  }
  if (us.empty()) return {};
  std::sort(us.begin(), us.end());
  const auto rank = [&](double q) {
    const size_t i = static_cast<size_t>(q * static_cast<double>(us.size()) + 0.999999);
    return static_cast<double>(us[std::clamp<size_t>(i, 1, us.size()) - 1]) / 1000.0;
  };
  return Latency{rank(0.50), rank(0.99), static_cast<double>(us.back()) / 1000.0};
}

double rps_of(const load::LoadResult& r) {
  const double seconds = static_cast<double>(r.elapsed.count()) / 1000.0;
  return seconds > 0 ? static_cast<double>(r.ok + r.failed()) / seconds : 0.0;
}

uint64_t count_of(const load::LoadResult& r, load::Failure kind) {
  const auto it = r.failures.find(kind);
  return it == r.failures.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------
// Output.

void print_json(const load::LoadResult& r) {
  nlohmann::ordered_json failures = nlohmann::ordered_json::object();
  for (const load::Failure kind : load::kAllFailures) {
    failures[std::string(load::to_string(kind))] = count_of(r, kind);
  }
  nlohmann::ordered_json pids = nlohmann::ordered_json::object();
  for (const auto& [pid, n] : r.pids) pids[std::to_string(pid)] = n;
  const Latency lat = latency_of(r);
  const nlohmann::ordered_json out = {
      {"ok", r.ok},
      {"failed", r.failed()},
      {"failures", failures},
      {"rps", rps_of(r)},
      {"elapsed_ms", r.elapsed.count()},
      {"latency_ms", {{"p50", lat.p50}, {"p99", lat.p99}, {"max", lat.max}}},
      {"pids", pids},
      {"connections_opened", r.connections_opened},
      {"failure_examples", r.failure_examples},
  };
  fmt::print("{}\n", out.dump());
}

void print_text(const load::LoadResult& r, const Args& args) {
  const auto& o = args.options;
  fmt::print("loadgen: {} {} mode={} connections={}\n", o.address, o.path,
             o.mode == load::Mode::kKeepAlive ? "keepalive" : "close", o.connections);
  fmt::print("requests: {} ok, {} failed in {:.3f}s ({:.1f} requests/s, {} connections opened)\n",
             r.ok, r.failed(), static_cast<double>(r.elapsed.count()) / 1000.0, rps_of(r),
             r.connections_opened);
  std::string kinds;
  for (const load::Failure kind : load::kAllFailures) {
    kinds +=
        fmt::format("{}{} {}", kinds.empty() ? "" : ", ", load::to_string(kind), count_of(r, kind));
  }
  fmt::print("failed by kind: {}\n", kinds);
  const Latency lat = latency_of(r);
  fmt::print("latency (ok requests): p50 {:.3f} ms, p99 {:.3f} ms, max {:.3f} ms\n", lat.p50,
             lat.p99, lat.max);
  for (const auto& [pid, n] : r.pids) fmt::print("pid {}: {} responses\n", pid, n);
  if (!r.failure_examples.empty()) fmt::print("failure examples:\n");
  for (const auto& e : r.failure_examples) fmt::print("  {}\n", e);
}

/// Owns a FILE*; fclose() happens in finish() (checked) or the destructor.
using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

/// Writes "start_us,latency_us,ok" rows; returns an error message or "".
std::string write_latencies(const load::LoadResult& r, const std::string& path) {
  File file(std::fopen(path.c_str(), "we"), &std::fclose);
  if (!file) return fmt::format("cannot write {}: {}", path, std::strerror(errno));
  fmt::print(file.get(), "start_us,latency_us,ok\n");
  for (const auto& s : r.samples) {
    const auto start =
        std::chrono::duration_cast<std::chrono::microseconds>(s.start - r.started).count();
    fmt::print(file.get(), "{},{},{}\n", start, s.latency.count(), s.ok ? 1 : 0);
  }
  const bool write_error = std::ferror(file.get()) != 0;
  if (std::fclose(file.release()) != 0 || write_error) {
    return fmt::format("cannot write {}: {}", path, std::strerror(errno));
  }
  return "";
}

int usage_error(const std::string& why) {
  fmt::print(stderr, "loadgen: {}\n{}", why, kUsage);
  return kExitUsage;
}

int run(const Args& args, const sigset_t& signals) {
  const auto end = Clock::now() + args.options.duration;
  auto started = load::LoadRun::start(args.options);
  if (!started) {
    fmt::print(stderr, "loadgen: {}\n", started.error);
    return started.sys_errno != 0 ? kExitSystem : kExitUsage;
  }
  if (!wait_for_end_or_signal(signals, end)) started.run->stop();
  const load::LoadResult result = started.run->wait();
  args.json ? print_json(result) : print_text(result, args);
  if (!args.latencies_file.empty()) {
    if (std::string why = write_latencies(result, args.latencies_file); !why.empty()) {
      fmt::print(stderr, "loadgen: {}\n", why);
      return kExitSystem;
    }
  }
  return result.failed() == 0 ? kExitOk : kExitFailures;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> argv_list(argv + 1, argv + argc);
  if (argc == 2 && (argv_list[0] == "--help" || argv_list[0] == "-h")) {
    fmt::print("{}", kUsage);
    return kExitOk;
  }
  Args args;
  if (std::string why = parse_args(argv_list, args); !why.empty()) return usage_error(why);
  // Blocked before any thread starts, so only sigtimedwait() ever takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (const int err = pthread_sigmask(SIG_BLOCK, &signals, nullptr); err != 0) {
    fmt::print(stderr, "loadgen: pthread_sigmask: {}\n", std::strerror(err));
    return kExitSystem;
  }
  try {
    return run(args, signals);
  } catch (const std::exception& e) {
    fmt::print(stderr, "loadgen: {}\n", e.what());
    return kExitSystem;
  }
}

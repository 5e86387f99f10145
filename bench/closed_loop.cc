// reload_bench's load runs (see closed_loop.h).
#include "closed_loop.h"

#include <iterator>

namespace bench {

using namespace std::chrono_literals;

/// As many failure examples as one load run keeps.
constexpr size_t kMaxFailureExamples = 10;

load::Mode load_mode(const std::string& mode) {
  return mode == "keepalive" ? load::Mode::kKeepAlive : load::Mode::kConnectionPerRequest;
}

std::unique_ptr<load::LoadRun> start_load(const std::string& address, const std::string& mode,
                                          int connections, Millis duration) {
  load::LoadOptions options;
  options.address = address;
  options.mode = load_mode(mode);
  options.connections = connections;
  options.duration = duration;
  options.max_duration = duration + 60s;
  options.request_timeout = 5s;
  options.record_latencies = true;
  auto started = load::LoadRun::start(options);
  if (!started) throw BenchError("cannot start the load client: " + started.error);
  return std::move(started.run);
}

load::LoadResult run_load(const std::string& address, const std::string& mode, int connections,
                          Millis duration) {
  const Clock::time_point started = Clock::now();
  auto run = start_load(address, mode, connections, duration);
  sleep_until(started + duration);
  return run->wait();
}

void add_load(load::LoadResult& total, load::LoadResult&& part) {
  total.ok += part.ok;
  for (const auto& [kind, n] : part.failures) total.failures[kind] += n;
  for (const auto& [pid, n] : part.pids) total.pids[pid] += n;
  for (auto& e : part.failure_examples) {
    if (total.failure_examples.size() < kMaxFailureExamples) {
      total.failure_examples.push_back(std::move(e));
    }
  }
  total.samples.insert(total.samples.end(), std::make_move_iterator(part.samples.begin()),
                       std::make_move_iterator(part.samples.end()));
  total.connections_opened += part.connections_opened;
  total.elapsed += part.elapsed;
}

}  // namespace bench

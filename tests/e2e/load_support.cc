// Load helpers shared by the end-to-end tests.
#include "load_support.h"

#include <doctest/doctest.h>

#include <fmt/format.h>

namespace e2e {

std::unique_ptr<load::LoadRun> start_load(const std::string& address, load::Mode mode,
                                          int connections, Millis max_duration) {
  load::LoadOptions options;
  options.address = address;
  options.mode = mode;
  options.connections = connections;
  options.max_duration = max_duration;
  auto started = load::LoadRun::start(options);
  REQUIRE(started.run);
  return std::move(started.run);
}

bool traffic_flows(load::LoadRun& run, uint64_t more) {
  uint64_t target = run.completed() + more;
  return eventually([&] { return run.completed() >= target; });
}

std::string describe(const load::LoadResult& r) {
  std::string text = fmt::format("ok {}, failed {}", r.ok, r.failed());
  for (const std::string& e : r.failure_examples) text += "\n  " + e;
  return text;
}

load::LoadResult finish_without_failures(load::LoadRun& run) {
  run.stop();
  load::LoadResult result = run.wait();
  INFO(describe(result));
  CHECK(result.failed() == 0);
  return result;
}

}  // namespace e2e

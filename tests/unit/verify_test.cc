// Tests `baton verify`'s pure parts: its flags and defaults, the address it
// chooses from `baton status`, when its reloads are due, the percentile
// arithmetic and the report's wording.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "verify_plan.h"
#include "verify_report.h"

using namespace baton;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

VerifyPlan plan_ok(const VerifyFlags& flags) {
  auto plan = plan_verify(flags);
  REQUIRE_MESSAGE(plan.ok(), plan.error().message);
  return plan.value();
}

std::string plan_error(const VerifyFlags& flags) {
  auto plan = plan_verify(flags);
  REQUIRE_FALSE(plan.ok());
  return plan.error().message;
}

const nlohmann::json kSockets = nlohmann::json::parse(R"([
  {"name": "dns", "kind": "udp", "address": "127.0.0.1:53"},
  {"name": "http", "kind": "tcp", "address": "127.0.0.1:8080"},
  {"name": "any", "kind": "tcp", "address": "0.0.0.0:9000"},
  {"name": "any6", "kind": "tcp", "address": "[::]:9001"},
  {"name": "lan", "kind": "tcp", "address": "10.1.2.3:80"},
  {"name": "local", "kind": "unix", "address": "/run/app.sock"},
  {"name": "abstract", "kind": "unix", "address": "@app"}
])");

std::string address_for(const std::string& socket, const std::string& address = "") {
  VerifyPlan plan;
  plan.socket = socket;
  plan.address = address;
  auto a = load_address(kSockets, plan);
  REQUIRE_MESSAGE(a.ok(), a.error().message);
  return a.value();
}

std::string address_error(const std::string& socket, const std::string& address = "") {
  VerifyPlan plan;
  plan.socket = socket;
  plan.address = address;
  auto a = load_address(kSockets, plan);
  REQUIRE_FALSE(a.ok());
  return a.error().message;
}

/// Flags with one option given.
VerifyFlags given(std::string VerifyFlags::*option, const std::string& value) {
  VerifyFlags flags;
  flags.*option = value;
  return flags;
}

std::vector<microseconds> us(std::initializer_list<int> values) {
  std::vector<microseconds> out;
  for (int v : values) out.push_back(microseconds(v));
  return out;
}

}  // namespace

TEST_CASE("verify's defaults: 3 reloads, 10s, 8 closed-loop connections, /") {
  VerifyPlan plan = plan_ok({});
  CHECK(plan.reloads == 3);
  CHECK(plan.duration == milliseconds(10000));
  CHECK(plan.connections == 8);
  CHECK(plan.rate == 0);
  CHECK(plan.path == "/");
  CHECK_FALSE(plan.keepalive);
  CHECK(plan.socket == "");
  CHECK(plan.address == "");
}

TEST_CASE("verify's flags as typed") {
  VerifyFlags flags;
  flags.reloads = "0";
  flags.duration = "1m30s";
  flags.rate = "1000";
  flags.path = "/healthz?full=1";
  flags.keepalive = true;
  flags.socket = "http";
  VerifyPlan plan = plan_ok(flags);
  CHECK(plan.reloads == 0);
  CHECK(plan.duration == milliseconds(90000));
  CHECK(plan.rate == 1000);
  CHECK(plan.connections == 20);  // rate_clients(1000)
  CHECK(plan.path == "/healthz?full=1");
  CHECK(plan.keepalive);
  CHECK(plan.socket == "http");
  CHECK(rate_clients(1) == 8);
  CHECK(rate_clients(500) == 10);
  CHECK(rate_clients(1000000) == 256);
}

TEST_CASE("verify's flags out of range are usage errors") {
  CHECK(plan_error(given(&VerifyFlags::reloads, "x")) ==
        "--reloads must be a whole number 0..1000, not \"x\"");
  CHECK(plan_error(given(&VerifyFlags::reloads, "1001")) ==
        "--reloads must be a whole number 0..1000, not \"1001\"");
  CHECK(plan_error(given(&VerifyFlags::connections, "0")) ==
        "--connections must be a whole number 1..4096, not \"0\"");
  CHECK(plan_error(given(&VerifyFlags::rate, "-5")) ==
        "--rate must be a whole number 1..1000000, not \"-5\"");
  CHECK(plan_error(given(&VerifyFlags::duration, "10")).starts_with("--duration: "));
  CHECK(plan_error(given(&VerifyFlags::duration, "0s")) ==
        "--duration must be above 0 and at most 24h, not 0s");
  CHECK(plan_error(given(&VerifyFlags::path, "healthz")) ==
        "--path must start with '/' and contain no spaces or control characters, not \"healthz\"");
  CHECK(plan_error(given(&VerifyFlags::path, "/a b")).starts_with("--path must start with '/'"));
  VerifyFlags both = given(&VerifyFlags::socket, "http");
  both.address = "127.0.0.1:1";
  CHECK(plan_error(both) == "give either --socket or --address, not both");
}

TEST_CASE("verify loads the first tcp or unix socket, a named one, or --address") {
  CHECK(address_for("") == "127.0.0.1:8080");
  CHECK(address_for("local") == "/run/app.sock");
  CHECK(address_for("abstract") == "@app");
  CHECK(address_for("", "[::1]:81") == "[::1]:81");
  // A wildcard socket is reached over loopback.
  CHECK(address_for("any") == "127.0.0.1:9000");
  CHECK(address_for("any6") == "[::1]:9001");
}

TEST_CASE("verify refuses udp, unknown sockets and addresses that are not loopback") {
  CHECK(address_error("dns") == "socket dns is udp; verify sends HTTP over tcp or unix");
  CHECK(address_error("web") == "the service has no socket named \"web\"");
  const std::string lan = address_error("lan");
  CHECK(
      lan.starts_with("socket lan: address 10.1.2.3:80: 10.1.2.3 is not loopback; verify sends "
                      "real load, so it sends it only to this host's loopback"));
  CHECK(address_error("", "192.168.0.1:80")
            .starts_with("--address: address 192.168.0.1:80: 192.168.0.1 is not loopback;"));
  VerifyPlan plan;
  auto none =
      load_address(nlohmann::json::parse(R"([{"name":"d","kind":"udp","address":"x"}])"), plan);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message == "the service has no tcp or unix socket to load");
}

TEST_CASE("reloads are due evenly spaced inside the run") {
  CHECK(reload_times(milliseconds(10000), 3) ==
        std::vector<milliseconds>{milliseconds(2500), milliseconds(5000), milliseconds(7500)});
  CHECK(reload_times(milliseconds(1000), 1) == std::vector<milliseconds>{milliseconds(500)});
  CHECK(reload_times(milliseconds(1000), 0).empty());
}

TEST_CASE("latency percentiles are nearest-rank") {
  LatencySummary none = summarise({});
  CHECK(none.count == 0);
  CHECK(none.max == microseconds(0));
  LatencySummary one = summarise(us({7}));
  CHECK(one.p50 == microseconds(7));
  CHECK(one.p99 == microseconds(7));
  std::vector<microseconds> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(microseconds(i));  // unsorted on purpose
  LatencySummary s = summarise(hundred);
  CHECK(s.count == 100);
  CHECK(s.p50 == microseconds(50));
  CHECK(s.p90 == microseconds(90));
  CHECK(s.p99 == microseconds(99));
  CHECK(s.max == microseconds(100));
  LatencySummary ten = summarise(us({1, 2, 3, 4, 5, 6, 7, 8, 9, 1000}));
  CHECK(ten.p50 == microseconds(5));
  CHECK(ten.p90 == microseconds(9));
  CHECK(ten.p99 == microseconds(1000));
}

TEST_CASE("the load client's failures fold into the report's kinds") {
  CHECK(verify_failure_of(load::Failure::kRefused) == VerifyFailure::kRefused);
  CHECK(verify_failure_of(load::Failure::kReset) == VerifyFailure::kReset);
  CHECK(verify_failure_of(load::Failure::kShortResponse) == VerifyFailure::kReset);
  CHECK(verify_failure_of(load::Failure::kTimeout) == VerifyFailure::kTimeout);
  CHECK(verify_failure_of(load::Failure::kHung) == VerifyFailure::kHung);
  CHECK(verify_failure_of(load::Failure::kNon2xx) == VerifyFailure::kNon2xx);
  CHECK(verify_failure_of(load::Failure::kInvalidResponse) == VerifyFailure::kInvalid);
  CHECK(verify_failure_of(load::Failure::kOther) == VerifyFailure::kOther);
  CHECK(std::string(verify_failure_name(VerifyFailure::kNon2xx)) == "non-2xx");
  CHECK(group_thousands(0) == "0");
  CHECK(group_thousands(999) == "999");
  CHECK(group_thousands(48213) == "48,213");
  CHECK(group_thousands(1234567) == "1,234,567");
}

TEST_CASE("the report: failures by kind, reloads, generations, latency in and out of windows") {
  using std::chrono::steady_clock;
  const steady_clock::time_point t0{};
  auto at = [&](int ms) { return t0 + milliseconds(ms); };
  VerifyOutcome o;
  o.address = "127.0.0.1:8080";
  o.load_shape = "2 connections, keep-alive";
  o.load.started = t0;
  o.load.elapsed = milliseconds(3000);
  o.load.ok = 4;
  o.load.failures = {{load::Failure::kRefused, 1}, {load::Failure::kShortResponse, 1}};
  o.load.failure_examples = {
      "refused: connect 127.0.0.1:8080: Connection refused [thread 0, +1.100s]"};
  o.load.pids = {{100, 2}, {200, 1}, {300, 1}};
  o.load.samples = {{at(500), microseconds(200), true},
                    {at(1000), microseconds(300), true},  // the window's first instant
                    {at(1100), microseconds(0), false},
                    {at(1200), microseconds(1500), true},  // its last
                    {at(1300), microseconds(0), false},
                    {at(2500), microseconds(12345), true}};
  o.reloads = {
      {at(1000), at(1200), true, "", "", 2, 200},
      {at(2000), at(2100), false, "generation 3 exited with status 3 before READY=1", "", 0, 0}};
  o.generations = {{100, 1}, {200, 2}};
  CHECK_FALSE(verify_passed(o));
  CHECK(
      format_verify_report(o) ==
      "verify: 3.0s at 127.0.0.1:8080 (2 connections, keep-alive)\n"
      "verify: 2 reloads (1 failed), 6 requests, 2 failed: refused 1, reset 1, timeout 0, hung 0, "
      "non-2xx 0, invalid 0, other 0\n"
      "first failures:\n"
      "  refused: connect 127.0.0.1:8080: Connection refused [thread 0, +1.100s]\n"
      "reloads:\n"
      "  1 at +1.00s: ok after 200ms, generation 2 (pid 200) serving\n"
      "  2 at +2.00s: FAILED after 100ms: generation 3 exited with status 3 before READY=1\n"
      "served by:\n"
      "  generation 1: pid 100 2\n"
      "  generation 2: pid 200 1\n"
      "  not a baton instance: pid 300 1\n"
      "latency of 2xx responses:\n"
      "  inside reload windows  3 requests, 1 failed            p50 0.30ms  p90 1.50ms  "
      "p99 1.50ms  max 1.50ms\n"
      "  outside                3 requests, 1 failed            p50 0.20ms  p90 12.3ms  "
      "p99 12.3ms  max 12.3ms\n");
}

TEST_CASE("the report of a clean run, and of responses that name no pid") {
  VerifyOutcome o;
  o.address = "/run/app.sock";
  o.load_shape = "8 connections, a new connection per request";
  o.load.elapsed = milliseconds(10000);
  o.load.ok = 48213;
  o.load.pids = {{0, 48213}};
  CHECK(verify_passed(o));
  CHECK(format_verify_report(o) ==
        "verify: 10.0s at /run/app.sock (8 connections, a new connection per request)\n"
        "verify: 0 reloads, 48,213 requests, 0 failed\n"
        "served by: not known: the responses do not name the pid that served them "
        "(examples/hello's say \"pid N\")\n");
}

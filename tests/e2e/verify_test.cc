// End-to-end tests of `baton verify`: against the test app it counts every
// request as served and exits 0; against a service that restarts the naive
// way (tests/apps/naive_app.c) it reports the refused connections by kind
// and exits 1; a reload that rolls back fails it too.
#include <doctest/doctest.h>

#include <regex>

#include <fmt/format.h>

#include "harness.h"

using namespace e2e;

namespace {

std::string naive_bin() {
  return NAIVE_BIN;
}

/// A service under baton on 127.0.0.1 (kernel-chosen port) and a unix
/// socket; `command` and `env` go into its config.
class VerifyService {
 public:
  explicit VerifyService(const std::string& command = hello_bin(), const std::string& env = "") {
    write(command, env);
    baton_ = std::make_unique<Baton>(dir_, std::vector<std::string>{"-c", config_},
                                     dir_.file("control.sock"));
    REQUIRE(baton_->wait_ready());
  }

  /// Rewrites the config, which the next reload reads.
  void write(const std::string& command, const std::string& env) {
    config_ = dir_.write(
        "baton.toml",
        fmt::format("command = [\"{}\"]\ncontrol = \"control.sock\"\nready_timeout = \"5s\"\n"
                    "[environment]\n{}\n"
                    "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n"
                    "[[socket]]\nname = \"local\"\nlisten = \"unix:{}\"\n",
                    command, env, dir_.file("app.sock")));
  }

  /// `baton verify -c CONFIG ARGS...`.
  CommandResult verify(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {baton_bin(), "verify", "-c", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  }

  Baton& baton() { return *baton_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string config_;
  std::unique_ptr<Baton> baton_;
};

/// The counts in "verify: R reloads (...), N requests, M failed[: kind n, ...]".
struct Summary {
  std::string reloads;
  uint64_t requests = 0, failed = 0;
  std::map<std::string, uint64_t> kinds;
};

Summary parse_summary(const std::string& out) {
  static const std::regex line(
      R"(verify: (\d+ reloads? \([^)]*\)), ([\d,]+) requests, ([\d,]+) failed(: ([^\n]*))?\n)");
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(out, m, line), out);
  auto number = [](std::string s) {
    std::erase(s, ',');
    return std::stoull(s);
  };
  Summary s{m[1], number(m[2]), number(m[3]), {}};
  static const std::regex kind(R"(([a-z0-9-]+) ([\d,]+))");
  const std::string kinds = m[5];
  for (std::sregex_iterator it(kinds.begin(), kinds.end(), kind), end; it != end; ++it) {
    s.kinds[(*it)[1]] = number((*it)[2]);
  }
  return s;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("verify against the test app: 2 reloads, 0 failed, 3 generations served, exit 0") {
  VerifyService service;
  CommandResult r = service.verify({"--reloads", "2", "--duration", "2s", "--connections", "4"});
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  const Summary s = parse_summary(r.out);
  CHECK(s.reloads == "2 reloads (all ok)");
  CHECK(s.failed == 0);
  CHECK(s.requests > 0);
  CHECK(s.kinds.empty());
  CHECK(contains(r.out, "(4 connections, a new connection per request)"));
  CHECK(contains(r.out, "  1 at +0.6"));
  CHECK(contains(r.out, "s: ok after "));
  CHECK(contains(r.out, "generation 3 (pid "));
  for (int generation : {1, 2, 3}) {
    CHECK(contains(r.out, fmt::format("  generation {}: pid ", generation)));
  }
  CHECK_FALSE(contains(r.out, "not a baton instance"));
  CHECK(contains(r.out, "  inside reload windows "));
  CHECK(service.baton().status()["generation"] == 3);
}

TEST_CASE("verify --rate over the unix socket with keep-alive: exactly rate x duration requests") {
  VerifyService service;
  CommandResult r = service.verify({"--socket", "local", "--rate", "200", "--duration", "1500ms",
                                    "--reloads", "1", "--keepalive"});
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  const Summary s = parse_summary(r.out);
  CHECK(s.reloads == "1 reload (all ok)");
  CHECK(s.requests == 300);
  CHECK(s.failed == 0);
  CHECK(contains(r.out, fmt::format("at {} (200 requests a second from up to 8 clients, "
                                    "keep-alive)",
                                    service.dir().file("app.sock"))));
}

TEST_CASE("verify against a naive restart: the refused connections by kind, exit 1") {
  const int port = free_port();
  VerifyService service(naive_bin(), fmt::format("NAIVE_PORT = \"{}\"", port));
  const std::string address = fmt::format("127.0.0.1:{}", port);
  // It said READY=1 before it listens; nothing announces the listen().
  REQUIRE(eventually([&] { return http_get(address).status == 200; }));
  CommandResult r = service.verify(
      {"--address", address, "--reloads", "1", "--duration", "1500ms", "--connections", "4"});
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 1);
  const Summary s = parse_summary(r.out);
  // baton saw nothing wrong: the app said it was ready.
  CHECK(s.reloads == "1 reload (all ok)");
  CHECK(s.failed > 0);
  CHECK(s.kinds.at("refused") > 0);
  uint64_t sum = 0;
  for (const char* kind : {"refused", "reset", "timeout", "hung", "non-2xx", "invalid", "other"}) {
    CAPTURE(kind);
    REQUIRE(s.kinds.count(kind) == 1);
    sum += s.kinds.at(kind);
  }
  CHECK(sum == s.failed);
  CHECK(contains(r.out, fmt::format("refused: connect {}: Connection refused", address)));
  // The new generation's pid names itself: its responses count for generation 2.
  CHECK(contains(r.out, "  generation 2: pid "));
}

TEST_CASE("verify: a reload that rolls back fails it, with baton's error; no request fails") {
  VerifyService service;
  service.write(hello_bin(), "HELLO_FAIL_AT_BOOT = \"3\"");
  CommandResult r = service.verify({"--reloads", "1", "--duration", "1s"});
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 1);
  const Summary s = parse_summary(r.out);
  CHECK(s.reloads == "1 reload (1 failed)");
  CHECK(s.failed == 0);
  CHECK(contains(r.out, "FAILED after "));
  CHECK(contains(r.out, "exited with status 3 before READY=1"));
  CHECK(service.baton().status()["generation"] == 1);
}

TEST_CASE("verify's refusals: usage 100, a non-loopback address 100, no baton 111") {
  VerifyService service;
  CommandResult r = service.verify({"--duration", "10"});
  CHECK(r.exit_code == 100);
  CHECK(contains(r.err, "baton: verify: --duration: "));
  r = service.verify({"--address", "10.0.0.1:80"});
  CHECK(r.exit_code == 100);
  CHECK(contains(r.err,
                 "10.0.0.1 is not loopback; verify sends real load, so it sends it only "
                 "to this host's loopback"));
  r = service.verify({"--socket", "nope"});
  CHECK(r.exit_code == 100);
  CHECK(contains(r.err, "the service has no socket named \"nope\""));
  r = run_command({baton_bin(), "verify", "--control", service.dir().file("absent.sock")}, 30s);
  CHECK(r.exit_code == 111);
  CHECK(r.out.empty());
}

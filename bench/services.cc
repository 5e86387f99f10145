// hello alone, legacy alone, and either under baton, for reload_bench (see services.h).
#include "services.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "support/loopback.h"

namespace bench {
namespace {

using namespace std::chrono_literals;
using support::Child;
using support::clean_environment;
using support::CommandResult;
using support::describe_wait_status;
using support::run_command;

// Generous: on a saturated 2-CPU VM a freshly started app can be starved of
// CPU for seconds (see README.md); this also covers a 1.5 s slow boot.
constexpr Millis kStartTimeout = 60s;
constexpr Millis kStopTimeout = 20s;    // baton's drain_timeout is 10 s
constexpr Millis kReloadTimeout = 90s;  // more than ready_timeout
constexpr Millis kDrainTimeout = 15s;

UniqueFd open_log(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) throw BenchError("cannot create " + path + ": " + std::strerror(errno));
  return fd;
}

/// A TCP listener on 127.0.0.1 with a kernel-chosen port; sets `address`.
UniqueFd listen_loopback(std::string& address) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const int one = 1;
  if (!fd.valid() || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd.get(), INT_MAX) != 0 ||  // the kernel caps it at somaxconn, as baton's default
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw BenchError(fmt::format("cannot listen on 127.0.0.1:0: {}", std::strerror(errno)));
  }
  address = fmt::format("127.0.0.1:{}", ntohs(addr.sin_port));
  return fd;
}

/// True if one request to `address` got a 2xx response.
bool answers(const std::string& address) {
  const support::Response r = support::http_get(address, "/", 1s);
  return r.ok && r.status >= 200 && r.status <= 299;
}

/// The last `lines` lines of a text file, indented ("" if it cannot be read).
std::string file_tail(const std::string& path, size_t lines = 20) {
  std::ifstream in(path);
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& line : last) out += "    " + line + "\n";
  return out;
}

std::string indent(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += "    " + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

/// `object[key]` as milliseconds; nullopt if absent or null.
std::optional<double> json_ms(const nlohmann::json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number()) return std::nullopt;
  return object[key].get<double>();
}

bool has_ready_instance(const nlohmann::json& status) {
  for (const auto& i : status.value("instances", nlohmann::json::array())) {
    if (i.value("state", "") == "ready") return true;
  }
  return false;
}

std::string toml_string(const std::string& s) {
  return nlohmann::json(s).dump();  // JSON string escapes are valid TOML basic strings
}

/// The [environment] lines that give hello the behaviour `hello` asks for.
std::string hello_environment(const HelloConfig& hello) {
  std::string env = "HELLO_VERSION = \"1\"\n";
  if (hello.boot_delay_ms > 0) {
    env += fmt::format("HELLO_BOOT_DELAY_MS = \"{}\"\n", hello.boot_delay_ms);
  }
  if (!hello.notify) env += "HELLO_NO_NOTIFY = \"1\"\n";
  if (hello.health_fail_ms > 0) {
    env += fmt::format("HELLO_HEALTH_FAIL_MS = \"{}\"\n", hello.health_fail_ms);
  }
  return env;
}

/// The [ready] table ("" without a probe); its keys end before [[socket]].
std::string ready_section(const HelloConfig& hello) {
  if (hello.ready_http.empty()) return "";
  std::string ready = "[ready]\nhttp = " + toml_string(hello.ready_http) + "\n";
  if (!hello.ready_interval.empty()) {
    ready += "interval = " + toml_string(hello.ready_interval) + "\n";
  }
  return ready + "\n";
}

}  // namespace

void wait_until_serving(const std::string& address, Clock::time_point deadline,
                        const std::function<void()>& check_alive) {
  for (;;) {
    throw_if_interrupted();
    check_alive();
    if (answers(address)) return;
    if (Clock::now() >= deadline) throw BenchError(address + " did not answer a request in time");
    sleep_until(Clock::now() + 50ms);
  }
}

std::string BackgroundCommand::output() const {
  std::ifstream in(output_path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// ---- HelloAlone --------------------------------------------------------------

HelloAlone::HelloAlone(const Binaries& bins, AloneSession session) {
  listener_ = listen_loopback(address_);
  log_ = open_log(dir_.file("hello.log"));
  std::vector<std::string> env = clean_environment();
  env.insert(env.end(), {"LISTEN_FDS=1", "LISTEN_FDNAMES=http", "HELLO_VERSION=baseline"});
  hello_.emplace(Child::spawn({.argv = {bins.hello},
                               .env = env,
                               .stdout_fd = log_.get(),
                               .stderr_fd = log_.get(),
                               .listen_fd = listener_.get(),
                               .new_process_group = session == AloneSession::kLikeBaton,
                               .new_session = session == AloneSession::kOwn,
                               .close_other_fds = true}));
}

HelloAlone::~HelloAlone() {
  if (hello_ && !hello_->reaped()) hello_->terminate(kStopTimeout);
}

void HelloAlone::check_alive() {
  if (auto status = hello_->wait(0ms)) {
    throw BenchError(fmt::format("hello (baseline) {}; its log ends with:\n{}",
                                 describe_wait_status(*status), file_tail(dir_.file("hello.log"))));
  }
}

void HelloAlone::wait_serving() {
  try {
    wait_until_serving(address_, Clock::now() + kStartTimeout, [this] { check_alive(); });
  } catch (const BenchError& e) {
    throw BenchError(fmt::format("hello (baseline) did not start serving: {}", e.what()));
  }
}

void HelloAlone::stop() {
  const pid_t pid = hello_->pid();
  const auto status = hello_->terminate(kStopTimeout);
  if (!status) throw BenchError(fmt::format("hello (baseline, pid {}) ignored SIGTERM", pid));
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    throw BenchError(fmt::format("hello (baseline) {} on SIGTERM", describe_wait_status(*status)));
  }
}

// ---- LegacyAlone -------------------------------------------------------------

LegacyAlone::LegacyAlone(const Binaries& bins) {
  if (bins.legacy.empty()) throw BenchError("examples/legacy was not built");
  const int port = support::free_port();
  address_ = fmt::format("127.0.0.1:{}", port);
  log_ = open_log(dir_.file("legacy.log"));
  std::vector<std::string> env = clean_environment();
  env.push_back("LEGACY_VERSION=baseline");
  // Its own session, as baton starts apps (see SpawnOptions::new_session).
  legacy_.emplace(
      Child::spawn({.argv = {bins.legacy, "--port", std::to_string(port), "--host", "127.0.0.1"},
                    .env = env,
                    .stdout_fd = log_.get(),
                    .stderr_fd = log_.get(),
                    .new_session = true,
                    .close_other_fds = true}));
}

LegacyAlone::~LegacyAlone() {
  if (legacy_ && !legacy_->reaped()) legacy_->terminate(kStopTimeout);
}

void LegacyAlone::check_alive() {
  if (auto status = legacy_->wait(0ms)) {
    throw BenchError(fmt::format("legacy (alone) {}; its log ends with:\n{}",
                                 describe_wait_status(*status),
                                 file_tail(dir_.file("legacy.log"))));
  }
}

void LegacyAlone::wait_serving() {
  try {
    wait_until_serving(address_, Clock::now() + kStartTimeout, [this] { check_alive(); });
  } catch (const BenchError& e) {
    throw BenchError(fmt::format("legacy (alone) did not start serving: {}", e.what()));
  }
}

void LegacyAlone::stop() {
  const pid_t pid = legacy_->pid();
  const auto status = legacy_->terminate(kStopTimeout);
  if (!status) throw BenchError(fmt::format("legacy (alone, pid {}) ignored SIGTERM", pid));
  const bool clean = (WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM) ||
                     (WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  if (!clean) {
    throw BenchError(fmt::format("legacy (alone) {} on SIGTERM", describe_wait_status(*status)));
  }
}

// ---- BatonService ------------------------------------------------------------

BatonService::BatonService(const Binaries& bins, const HelloConfig& hello, int shim_port)
    : bins_(bins), shim_(shim_port > 0), env_(clean_environment()) {
  if (shim_ && (bins_.legacy.empty() || bins_.shim_library.empty())) {
    throw BenchError("examples/legacy or the shim library was not built");
  }
  if (shim_) env_.push_back("BATON_SHIM_LIBRARY=" + bins_.shim_library);
  config_ = dir_.write("baton.toml", write_config(hello, shim_port));
  control_ = dir_.file("control.sock");
  log_ = open_log(dir_.file("baton.log"));
  start();
  try {
    wait_ready();
  } catch (...) {
    shut_down();  // a throwing constructor gets no destructor call
    throw;
  }
}

BatonService::~BatonService() {
  shut_down();
}

void BatonService::shut_down() noexcept {
  if (!baton_ || baton_->reaped()) return;
  const auto status = baton_->terminate(kStopTimeout);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) kill_apps();
}

void BatonService::kill_apps() noexcept {
  // Each app leads its own process group; without baton nobody stops them.
  for (int pid : app_pids_) kill(-pid, SIGKILL);
}

std::string BatonService::write_config(const HelloConfig& hello, int shim_port) const {
  if (shim_port > 0) {
    return fmt::format(
        "# Written by reload_bench.\n"
        "name = \"reload-bench-shim\"\ncommand = [{}, \"--port\", \"{}\", \"--host\", "
        "\"127.0.0.1\"]\ncontrol = \"control.sock\"\nshim = true\n"
        "drain_timeout = \"10s\"\nready_timeout = \"60s\"\n\n"
        "[environment]\nLEGACY_VERSION = \"1\"\n\n"
        "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:{}\"\n",
        toml_string(bins_.legacy), shim_port, shim_port);
  }
  std::string top = "drain_timeout = \"10s\"\nready_timeout = \"60s\"\n";
  if (!hello.listeners.empty()) top += "listeners = " + toml_string(hello.listeners) + "\n";
  if (hello.instances > 0) top += fmt::format("instances = {}\n", hello.instances);
  if (!hello.strategy.empty()) top += "strategy = " + toml_string(hello.strategy) + "\n";
  if (hello.max_surge > 0) top += fmt::format("max_surge = {}\n", hello.max_surge);
  if (!hello.standby.empty()) top += "standby = " + toml_string(hello.standby) + "\n";
  return fmt::format(
      "# Written by reload_bench.\n"
      "name = \"reload-bench\"\ncommand = [{}]\ncontrol = \"control.sock\"\n{}\n"
      "[environment]\n{}\n{}"
      "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
      toml_string(bins_.hello), top, hello_environment(hello), ready_section(hello));
}

void BatonService::start() {
  baton_.emplace(Child::spawn({.argv = {bins_.baton, "run", "-c", config_},
                               .env = env_,
                               .stdout_fd = log_.get(),
                               .stderr_fd = log_.get(),
                               .close_other_fds = true}));
}

void BatonService::fail(const std::string& what) {
  throw BenchError(
      fmt::format("{}\n  baton's log ends with:\n{}", what, file_tail(dir_.file("baton.log"))));
}

void BatonService::check_alive() {
  if (auto status = baton_->wait(0ms)) {
    kill_apps();
    fail("baton " + describe_wait_status(*status));
  }
}

std::optional<nlohmann::json> BatonService::try_status() {
  const CommandResult r =
      run_command({bins_.baton, "status", "--json", "--control", control_}, 5s, env_);
  if (r.exit_code != 0) return std::nullopt;
  try {
    nlohmann::json status = nlohmann::json::parse(r.out);
    remember_app_pids(status);
    return status;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

void BatonService::remember_app_pids(const nlohmann::json& status) {
  for (const auto& i : status.value("instances", nlohmann::json::array())) {
    app_pids_.insert(i.value("pid", 0));
  }
  app_pids_.erase(0);
}

void BatonService::wait_ready() {
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    check_alive();
    if (auto status = try_status(); status && has_ready_instance(*status)) {
      address_ = (*status)["sockets"][0]["address"].get<std::string>();
      break;
    }
    if (Clock::now() >= deadline) fail("baton's first generation did not become ready in 60 s");
    sleep_until(Clock::now() + 20ms);
  }
  try {
    wait_until_serving(address_, Clock::now() + kStartTimeout, [this] { check_alive(); });
  } catch (const BenchError& e) {
    fail(fmt::format("{} under baton did not start serving: {}", shim_ ? "legacy" : "hello",
                     e.what()));
  }
}

ReloadOutcome BatonService::try_reload(bool wait_for_drain) {
  std::vector<std::string> argv = {bins_.baton, "reload", "-c", config_};
  if (wait_for_drain) argv.push_back("--wait");
  const CommandResult r = run_command(argv, kReloadTimeout, env_);
  ReloadOutcome o;
  ReloadTiming& t = o.timing;
  t.requested = r.started;
  t.returned = r.finished;
  t.wall_ms = std::chrono::duration<double, std::milli>(r.finished - r.started).count();
  if (r.timed_out) fail("`baton reload` did not finish within 90 s (killed)");
  o.output = r.out + r.err;
  if (r.exit_code == 1) return o;
  if (r.exit_code != 0) {
    fail(fmt::format("`baton reload` exited with code {}; it printed:\n{}{}", r.exit_code,
                     indent(r.out), indent(r.err)));
  }
  // Which generation and pid it started, and baton's step timings so far.
  const auto status = try_status();
  const nlohmann::json last =
      status ? status->value("last_reload", nlohmann::json()) : nlohmann::json();
  if (!last.is_object() || last.value("result", "") != "ok") {
    fail("`baton reload` succeeded but `baton status --json` shows no successful last reload");
  }
  t.generation = last.value("generation", 0);
  t.pid = last.value("pid", 0);
  t.request_to_exec_ms = json_ms(last, "request_to_exec_ms");
  t.exec_to_ready_ms = json_ms(last, "exec_to_ready_ms");
  t.ready_to_drain_ms = json_ms(last, "ready_to_drain_ms");
  app_pids_.insert(t.pid);
  o.ok = true;
  return o;
}

ReloadTiming BatonService::reload() {
  ReloadOutcome o = try_reload(false);
  if (!o.ok) fail("`baton reload` exited with code 1; it printed:\n" + indent(o.output));
  return o.timing;
}

BackgroundCommand BatonService::start_command(const std::string& verb) {
  const std::string output_path = dir_.file(verb + ".out");
  UniqueFd out(open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) throw BenchError("cannot create " + output_path + ": " + std::strerror(errno));
  const Clock::time_point started = Clock::now();
  return {Child::spawn({.argv = {bins_.baton, verb, "-c", config_},
                        .env = env_,
                        .stdout_fd = out.get(),
                        .stderr_fd = out.get(),
                        .close_other_fds = true}),
          started, output_path};
}

nlohmann::json BatonService::status() {
  check_alive();
  std::optional<nlohmann::json> status = try_status();
  if (!status) fail("`baton status --json` did not answer");
  return *std::move(status);
}

void BatonService::wait_drained(ReloadTiming& t) {
  const auto deadline = Clock::now() + kDrainTimeout;
  for (;;) {
    check_alive();
    const auto status = try_status();
    const nlohmann::json last =
        status ? status->value("last_reload", nlohmann::json()) : nlohmann::json();
    if (last.is_object() && last.value("generation", 0) == t.generation &&
        json_ms(last, "drain_ms")) {
      t.request_to_exec_ms = json_ms(last, "request_to_exec_ms");
      t.exec_to_ready_ms = json_ms(last, "exec_to_ready_ms");
      t.ready_to_drain_ms = json_ms(last, "ready_to_drain_ms");
      t.drain_ms = json_ms(last, "drain_ms");
      return;
    }
    if (Clock::now() >= deadline) {
      fail(fmt::format("the generation replaced by generation {} did not exit within 15 s",
                       t.generation));
    }
    sleep_until(Clock::now() + 50ms);
  }
}

void BatonService::stop() {
  const pid_t pid = baton_->pid();
  const auto status = baton_->terminate(kStopTimeout);
  if (!status) {
    kill_apps();
    fail(fmt::format("baton (pid {}) did not exit within 20 s of SIGTERM (killed)", pid));
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    kill_apps();
    fail(fmt::format("baton {} on SIGTERM", describe_wait_status(*status)));
  }
}

}  // namespace bench

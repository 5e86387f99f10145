// Implementation of the end-to-end harness: baton under test and its state.
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace e2e {
namespace {

/// The pid of an instance in `status`, of generation `generation` if not 0,
/// in state `state`; -1 if there is none.
pid_t find_instance(const nlohmann::json& status, const std::string& state, int generation) {
  for (const auto& i : status["instances"]) {
    if (i["state"] == state && (generation == 0 || i["generation"] == generation)) {
      return i["pid"].get<pid_t>();
    }
  }
  return -1;
}

/// Stands for "NOTIFY_SOCKET=<this Baton's listener>" in a launcher's
/// arguments, which are built before the listener exists.
constexpr const char* kNotifyPlaceholder = "NOTIFY_SOCKET=@baton-e2e-placeholder";

}  // namespace

Baton::Baton(const TempDir& dir, std::vector<std::string> args, std::string control,
             const std::string& launcher)
    : Baton(
          dir,
          [&] {
            std::vector<std::string> argv = {baton_bin(), "run"};
            // systemd-socket-activate passes only the variables given with -E.
            if (!launcher.empty()) argv = {launcher, "-E", kNotifyPlaceholder};
            argv.insert(argv.end(), args.begin(), args.end());
            return argv;
          }(),
          std::move(control), {}, -1) {}

std::unique_ptr<Baton> Baton::with_socket(const TempDir& dir, std::vector<std::string> args,
                                          std::string control, int fd, const std::string& name) {
  std::vector<std::string> argv = {baton_bin(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::unique_ptr<Baton>(new Baton(dir, std::move(argv), std::move(control),
                                          {"LISTEN_FDS=1", "LISTEN_FDNAMES=" + name}, fd));
}

Baton::Baton(const TempDir& dir, std::vector<std::string> argv, std::string control,
             std::vector<std::string> extra_env, int fd3)
    : log_path_(dir.file("baton.log")),
      control_(std::move(control)),
      process_(start(dir, std::move(argv), std::move(extra_env), fd3)) {}

Child Baton::start(const TempDir& dir, std::vector<std::string> argv,
                   std::vector<std::string> extra_env, int fd3) {
  for (std::string& a : argv) {
    if (a == kNotifyPlaceholder) a = "NOTIFY_SOCKET=" + notify_.socket_env();
  }
  std::vector<std::string> env = clean_environment();
  env.push_back("NOTIFY_SOCKET=" + notify_.socket_env());
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // A process group of its own, which a launcher's children share (not a
  // session: that would be a CPU scheduling group of its own too).
  Child child = Child::spawn({.argv = std::move(argv),
                              .env = std::move(env),
                              .stdout_fd = log,
                              .stderr_fd = log,
                              .listen_fd = fd3,
                              .working_directory = dir.path(),
                              .new_process_group = true});
  close(log);
  return child;
}

Baton::~Baton() {
  if (!process_.reaped()) {
    try {
      try_status(5s);  // the apps' pids, for below
    } catch (const std::exception&) {
      // Without them, only the apps seen so far are killed below.
    }
    // baton, and a launcher's children (baton as PID 1 of a pid namespace,
    // which takes its apps with it).
    kill(-pid(), SIGKILL);
    process_.kill();
  }
  // Apps run in their own process groups and outlive a killed baton.
  for (pid_t app : app_pids_) {
    if (app > 1 && process_exists(app)) kill(-app, SIGKILL);
  }
}

bool Baton::wait_ready(Millis timeout) {
  for (const std::string& m : notify_.history()) {
    if (m.find("READY=1") != std::string::npos) return true;
  }
  return notify_.wait_for(
      [](const std::string& m) { return m.find("READY=1") != std::string::npos; }, timeout);
}

bool Baton::wait_until(const StatusCheck& check, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // A message from here on may be about a change that the status below
    // does not show yet: it wakes the next round.
    while (notify_.next(0ms)) {
    }
    std::optional<nlohmann::json> s = try_status(Millis(remaining_ms(deadline)));
    if (s && check(*s)) {
      // What baton sent before it answered is queued by now: taken, so that
      // a message after this says what changed since.
      while (notify_.next(0ms)) {
      }
      return true;
    }
    if (!notify_.next(Millis(remaining_ms(deadline)))) return false;
  }
}

std::optional<nlohmann::json> Baton::try_status(Millis timeout) {
  CommandResult r = run_command({baton_bin(), "status", "--json", "--control", control_}, timeout);
  if (r.exit_code != 0) return std::nullopt;
  auto status = nlohmann::json::parse(r.out, nullptr, false);
  if (status.is_discarded()) return std::nullopt;
  remember_app_pids(status);
  return status;
}

nlohmann::json Baton::status() {
  CommandResult r = run_command({baton_bin(), "status", "--json", "--control", control_});
  if (r.exit_code != 0) {
    throw std::runtime_error(fmt::format("baton status failed ({}): {}", r.exit_code, r.err));
  }
  auto status = nlohmann::json::parse(r.out);
  remember_app_pids(status);
  return status;
}

void Baton::remember_app_pids(const nlohmann::json& status) {
  // Behind a launcher that starts baton in a pid namespace of its own, the
  // pids are not this namespace's.
  if (status["pid"] != pid()) return;
  for (const auto& i : status["instances"]) app_pids_.insert(i["pid"].get<pid_t>());
}

pid_t Baton::instance_pid(const std::string& state) {
  return find_instance(status(), state, 0);
}

pid_t Baton::wait_instance(const std::string& state, int generation, Millis timeout) {
  pid_t pid = -1;
  wait_until(
      [&](const nlohmann::json& s) {
        pid = find_instance(s, state, generation);
        return pid > 0;
      },
      timeout);
  return pid;
}

std::optional<int> Baton::wait_exit(Millis timeout) {
  auto status = process_.wait(timeout);
  if (!status) return std::nullopt;
  return exit_code(*status);
}

std::string Baton::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Baton::describe() {
  if (std::optional<int> status = process_.wait(0ms)) {
    return fmt::format("baton pid {} {}", pid(), describe_wait_status(*status));
  }
  // Where it waits: its state, kernel wait channel and current syscall.
  auto read = [&](const char* what) {
    std::ifstream in(fmt::format("/proc/{}/{}", pid(), what));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  return fmt::format("baton pid {} runs: stat: {}; wchan: {}; syscall: {}", pid(), read("stat"),
                     read("wchan"), read("syscall"));
}

StatusCheck restarting(int generation) {
  return [=](const nlohmann::json& s) {
    const auto& instances = s["instances"];
    return s["generation"] == generation && s["next_start_in_ms"].is_number() &&
           std::none_of(instances.begin(), instances.end(),
                        [&](const nlohmann::json& i) { return i["generation"] == generation; });
  };
}

StatusCheck generation_reached(int generation) {
  return [=](const nlohmann::json& s) { return s["generation"].get<int>() >= generation; };
}

int accept_queue_length(int port) {
  std::vector<TcpListener> listeners = tcp_listeners(port);
  return listeners.empty() ? -1 : listeners[0].accept_queue;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string baton_bin() {
  return BATON_BIN;
}
std::string hello_bin() {
  return HELLO_BIN;
}
std::string probe_bin() {
  return PROBE_BIN;
}

}  // namespace e2e

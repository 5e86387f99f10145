// Process and file helpers for reload_bench (see process.h).
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <thread>

extern char** environ;

namespace bench {
namespace {

/// Everything the child needs, built before fork(): no allocation after it.
struct ExecPlan {
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, env;
  char* listen_pid_digits = nullptr;  // inside env_storage, room for 20 digits
};

constexpr std::string_view kListenPid = "LISTEN_PID=";

ExecPlan make_plan(const SpawnOptions& options) {
  ExecPlan plan;
  plan.argv_storage = options.argv;
  plan.env_storage = options.env;
  if (options.listen_fd >= 0)
    plan.env_storage.push_back(std::string(kListenPid) + std::string(20, '\0'));
  for (auto& a : plan.argv_storage) plan.argv.push_back(a.data());
  for (auto& e : plan.env_storage) plan.env.push_back(e.data());
  plan.argv.push_back(nullptr);
  plan.env.push_back(nullptr);
  if (options.listen_fd >= 0)
    plan.listen_pid_digits = plan.env_storage.back().data() + kListenPid.size();
  return plan;
}

/// Async-signal-safe decimal formatting into a buffer of at least 21 bytes.
void write_decimal(char* out, long value) {
  char digits[21];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  for (int i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
}

/// Runs in the child after fork(): only async-signal-safe calls.
[[noreturn]] void exec_child(const ExecPlan& plan, const SpawnOptions& options, int null_fd) {
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (options.new_session) setsid();
  dup2(null_fd, 0);
  dup2(options.stdout_fd >= 0 ? options.stdout_fd : null_fd, 1);
  dup2(options.stderr_fd >= 0 ? options.stderr_fd : null_fd, 2);
  int first_closed = 3;
  if (options.listen_fd >= 0) {
    if (options.listen_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(options.listen_fd, 3);
    }
    write_decimal(plan.listen_pid_digits, static_cast<long>(getpid()));
    first_closed = 4;
  }
  close_range(static_cast<unsigned>(first_closed), ~0U, 0);
  execve(plan.argv[0], plan.argv.data(), plan.env.data());
  _exit(127);
}

// ---- Interruption -----------------------------------------------------------
// The first SIGINT or SIGTERM tells the long-lived children to stop (baton
// drains its app; hello alone runs in a session of its own and would not get
// a terminal's Ctrl-C) and asks the bench to unwind, which removes its
// temporary directories. A second one kills the bench at once.

constexpr size_t kMaxTracked = 16;
std::atomic<pid_t> g_tracked[kMaxTracked];
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int sig) {
  if (g_interrupted.exchange(true)) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  for (auto& slot : g_tracked) {
    const pid_t pid = slot.load();
    if (pid > 0) kill(pid, SIGTERM);
  }
}

void install_forwarding_once() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

void track(pid_t pid) {
  install_forwarding_once();
  for (auto& slot : g_tracked) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack(pid_t pid) {
  for (auto& slot : g_tracked) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

/// Reads both pipes until EOF on both or `deadline`.
void drain_pipes(int out_fd, int err_fd, CommandResult& result, Clock::time_point deadline) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_pipes = 2;
  while (open_pipes > 0 && remaining_ms(deadline) > 0) {
    if (poll(fds, 2, remaining_ms(deadline)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
}

}  // namespace

bool interrupted() {
  return g_interrupted.load();
}

void throw_if_interrupted() {
  if (interrupted()) throw BenchError("interrupted by a signal");
}

void sleep_until(Clock::time_point t) {
  while (Clock::now() < t) {
    throw_if_interrupted();
    std::this_thread::sleep_for(std::min<Clock::duration>(t - Clock::now(), Millis(20)));
  }
  throw_if_interrupted();
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/reload-bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw BenchError("cannot create a temporary directory: " + std::string(std::strerror(errno)));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  const std::string p = file(name);
  std::ofstream out(p);
  out << text;
  if (!out.flush()) throw BenchError("cannot write " + p);
  return p;
}

std::string file_tail(const std::string& path, size_t lines) {
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

std::vector<std::string> clean_environment() {
  static constexpr std::string_view kDropped[] = {
      "LISTEN_FDS=",    "LISTEN_PID=",    "LISTEN_FDNAMES=",
      "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    bool dropped = false;
    for (auto prefix : kDropped) dropped = dropped || entry.starts_with(prefix);
    if (!dropped) env.emplace_back(entry);
  }
  return env;
}

Child Child::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw BenchError("spawn: empty argv");
  const ExecPlan plan = make_plan(options);
  const UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd.valid()) throw BenchError("cannot open /dev/null");
  const pid_t pid = fork();
  if (pid < 0) throw BenchError("fork: " + std::string(std::strerror(errno)));
  if (pid == 0) exec_child(plan, options, null_fd.get());
  track(pid);
  return Child(pid);
}

Child::~Child() {
  if (pid_ < 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  untrack(pid_);
}

void Child::forget() {
  untrack(pid_);
  pid_ = -1;
}

std::optional<int> Child::poll_exit() {
  if (pid_ < 0) return std::nullopt;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  forget();
  return status;
}

std::optional<int> Child::wait_until(Clock::time_point deadline) {
  for (;;) {
    if (auto status = poll_exit()) return status;
    if (pid_ < 0 || Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(Millis(5));
  }
}

std::optional<int> Child::terminate(Millis grace) {
  if (pid_ < 0) return std::nullopt;
  kill(pid_, SIGTERM);
  if (auto status = wait_until(Clock::now() + grace)) return status;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  forget();
  return std::nullopt;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped (wait status " + std::to_string(status) + ")";
}

CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          Millis timeout) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw BenchError("pipe2 failed");
  UniqueFd out_read(out[0]), out_write(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) throw BenchError("pipe2 failed");
  UniqueFd err_read(err[0]), err_write(err[1]);

  CommandResult result;
  result.started = Clock::now();
  const Clock::time_point deadline = result.started + timeout;
  Child child = Child::spawn({argv, env, out_write.get(), err_write.get(), -1, false});
  out_write.reset();
  err_write.reset();
  drain_pipes(out_read.get(), err_read.get(), result, deadline);
  const auto status = child.wait_until(deadline);
  result.finished = Clock::now();
  result.timed_out = !status.has_value();
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  return result;  // a timed-out child is killed and reaped by ~Child
}

}  // namespace bench

// Child processes and /proc (process.h).
#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace support {
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
[[noreturn]] void exec_child(const ExecPlan& plan, const SpawnOptions& options, int null_fd,
                             const char* working_directory) {
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (options.new_session) {
    setsid();
  } else if (options.new_process_group) {
    setpgid(0, 0);
  }
  dup2(null_fd, 0);
  dup2(options.stdout_fd >= 0 ? options.stdout_fd : null_fd, 1);
  dup2(options.stderr_fd >= 0 ? options.stderr_fd : null_fd, 2);
  if (options.listen_fd >= 0) {
    if (options.listen_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(options.listen_fd, 3);  // dup2 clears CLOEXEC on the copy
    }
    write_decimal(plan.listen_pid_digits, static_cast<long>(getpid()));
  }
  if (options.close_other_fds) close_range(options.listen_fd >= 0 ? 4 : 3, ~0U, 0);
  if (working_directory != nullptr && chdir(working_directory) != 0) _exit(127);
  execve(plan.argv[0], plan.argv.data(), plan.env.data());
  _exit(127);
}

/// Both ends of a pipe, closed when it goes.
struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    close_write();
    if (read >= 0) close(read);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_write() {
    if (write >= 0) close(write);
    write = -1;
  }
};

/// Reads both pipes into `result` until EOF on both or `deadline`.
void read_output(int out_fd, int err_fd, CommandResult& result, Clock::time_point deadline) {
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

std::vector<std::string> clean_environment(const std::vector<std::string>& also_drop) {
  static constexpr std::string_view kDropped[] = {
      "LISTEN_", "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    bool dropped = false;
    for (auto prefix : kDropped) dropped = dropped || entry.starts_with(prefix);
    for (const auto& prefix : also_drop) dropped = dropped || entry.starts_with(prefix);
    if (!dropped) env.emplace_back(entry);
  }
  return env;
}

Child Child::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw std::runtime_error("spawn: empty argv");
  const ExecPlan plan = make_plan(options);
  const char* working_directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) throw std::runtime_error("cannot open /dev/null");
  const pid_t pid = fork();
  if (pid == 0) exec_child(plan, options, null_fd, working_directory);
  const int fork_errno = errno;
  close(null_fd);
  if (pid < 0) throw std::runtime_error("fork: " + std::string(std::strerror(fork_errno)));
  // Also here, so that the group exists once spawn() returns.
  if (options.new_process_group) setpgid(pid, pid);
  return Child(pid);
}

Child::Child(Child&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

Child::~Child() {
  kill();
}

std::optional<int> Child::wait(Millis timeout) {
  if (status_ || pid_ <= 0) return status_;
  const auto deadline = Clock::now() + timeout;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    wait_fd(pidfd, POLLIN, deadline);
    close(pidfd);
  }
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_;
}

std::optional<int> Child::terminate(Millis grace) {
  if (status_ || pid_ <= 0) return status_;
  ::kill(pid_, SIGTERM);
  if (auto status = wait(grace)) return status;
  kill();
  return std::nullopt;
}

void Child::kill() {
  if (status_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  return 128 + WTERMSIG(wait_status);
}

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(wait_status));
  }
  return "stopped (wait status " + std::to_string(wait_status) + ")";
}

CommandResult run_command(const std::vector<std::string>& argv, Millis timeout,
                          const std::vector<std::string>& env) {
  Pipe out, err;
  CommandResult result;
  result.started = Clock::now();
  const Clock::time_point deadline = result.started + timeout;
  Child child =
      Child::spawn({.argv = argv, .env = env, .stdout_fd = out.write, .stderr_fd = err.write});
  out.close_write();
  err.close_write();
  read_output(out.read, err.read, result, deadline);
  const auto status = child.wait(Millis(remaining_ms(deadline)));
  if (status) {
    result.exit_code = exit_code(*status);
  } else {
    child.kill();
    result.timed_out = true;
  }
  result.finished = Clock::now();
  return result;
}

bool process_exists(pid_t pid) {
  if (pid <= 0) return false;
  // A zombie still exists for kill(); it counts as gone.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] != 'Z';
}

std::string fd_link(pid_t pid, int fd) {
  std::error_code ec;
  auto target = std::filesystem::read_symlink(
      "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
  return ec ? "" : target.string();
}

std::set<int> open_fds(pid_t pid) {
  std::set<int> fds;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    fds.insert(std::stoi(it->path().filename().string()));
  }
  return fds;
}

}  // namespace support

// check_runnable: the checks of a parsed config that look at the file
// system (the control path's length, working_directory, the command and its
// shim target, the programs of probes, smoke checks and hooks), so
// `baton check` and `baton run` refuse the same configs.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "config.h"
#include "shim_support.h"
#include "unix_address.h"

namespace baton {
namespace {

/// The problems of one config, each named after its file, in the order found.
class RunProblems {
 public:
  explicit RunProblems(std::string file) : file_(std::move(file)) {}

  void add(std::string_view message) { lines_.push_back(fmt::format("{}: {}", file_, message)); }
  bool empty() const { return lines_.empty(); }
  /// Every problem, one per line.
  Error error() const { return baton::error(fmt::format("{}", fmt::join(lines_, "\n"))); }

 private:
  std::string file_;
  std::vector<std::string> lines_;
};

/// A check's program given by path must be an executable file; one without
/// a '/' is looked up in PATH when it runs, in the environment it gets then.
void check_program(const std::vector<std::string>& argv, std::string_view what,
                   RunProblems& problems) {
  if (argv.empty() || argv[0].find('/') == std::string::npos) return;
  if (find_executable(argv[0]).empty()) {
    problems.add(fmt::format("{} {} is not an executable file", what, argv[0]));
  }
}

void check_check_programs(const Config& config, RunProblems& problems) {
  check_program(config.ready.exec, "ready.exec", problems);
  for (const CheckCommand& smoke : config.smoke) {
    check_program(smoke.command, fmt::format("smoke check '{}':", smoke.name), problems);
  }
  if (config.pre_reload) check_program(config.pre_reload->command, "hooks.pre_reload", problems);
  if (config.after_drained) {
    check_program(config.after_drained->command, "hooks.after_drained", problems);
  }
}

}  // namespace

Status check_runnable(const Config& config) {
  RunProblems problems(config.file.empty() ? "baton" : config.file);
  if (config.control_path.size() > kMaxUnixPath) {
    problems.add(
        fmt::format("control socket path {} is {} bytes; a unix socket path holds at "
                    "most {}",
                    config.control_path, config.control_path.size(), kMaxUnixPath));
  }
  if (std::string notify = notify_socket_path(config.control_path);
      !config.abstract_notify_socket && config.control_path.size() <= kMaxUnixPath &&
      notify.size() > kMaxUnixPath) {
    problems.add(fmt::format(
        "notify socket path {} (the control socket's, with .notify) is {} bytes; a unix socket "
        "path holds at most {}: give a shorter control path, or set notify_socket = \"abstract\"",
        notify, notify.size(), kMaxUnixPath));
  }
  if (const std::string& dir = config.working_directory; !dir.empty()) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0)
      problems.add(fmt::format("working_directory {}: {}", dir, std::strerror(errno)));
    else if (!S_ISDIR(st.st_mode))
      problems.add(fmt::format("working_directory {} is not a directory", dir));
  }
  if (config.metrics_file) {
    std::string dir = std::filesystem::path(config.metrics_file->path).parent_path().string();
    struct stat st;
    if (stat(dir.c_str(), &st) != 0)
      problems.add(fmt::format("metrics.file's directory {}: {}", dir, std::strerror(errno)));
    else if (!S_ISDIR(st.st_mode))
      problems.add(fmt::format("metrics.file's directory {} is not a directory", dir));
  }
  const std::string program = config.command.empty() ? "" : config.command[0];
  if (find_executable(program).empty()) {
    problems.add(
        fmt::format("command {} is not an executable file (or not found in PATH)", program));
  } else if (config.shim) {
    if (Status s = check_shim_target(program); !s) problems.add(s.error().message);
  } else if (Status s = check_script_interpreter(find_executable(program)); !s) {
    problems.add(s.error().message);
  }
  check_check_programs(config, problems);
  if (!problems.empty()) return problems.error();
  return {};
}

}  // namespace baton

// check_runnable: the checks of a parsed config that look at the file
// system (the control path's length, working_directory, the command and its
// shim target), so `baton check` and `baton run` refuse the same configs.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
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
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(std::string_view message) { lines_.push_back(fmt::format("{}: {}", file_, message)); }
  bool empty() const { return lines_.empty(); }
  /// Every problem, one per line.
  Error error() const { return baton::error(fmt::format("{}", fmt::join(lines_, "\n"))); }

 private:
  std::string file_;
  std::vector<std::string> lines_;
};

}  // namespace

Status check_runnable(const Config& config) {
  Problems problems(config.file.empty() ? "baton" : config.file);
  if (config.control_path.size() > kMaxUnixPath) {
    problems.add(
        fmt::format("control socket path {} is {} bytes; a unix socket path holds at "
                    "most {}",
                    config.control_path, config.control_path.size(), kMaxUnixPath));
  }
  if (const std::string& dir = config.working_directory; !dir.empty()) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0)
      problems.add(fmt::format("working_directory {}: {}", dir, std::strerror(errno)));
    else if (!S_ISDIR(st.st_mode))
      problems.add(fmt::format("working_directory {} is not a directory", dir));
  }
  const std::string program = config.command.empty() ? "" : config.command[0];
  if (find_executable(program).empty()) {
    problems.add(
        fmt::format("command {} is not an executable file (or not found in PATH)", program));
  } else if (config.shim) {
    if (Status s = check_shim_target(program); !s) problems.add(s.error().message);
  }
  if (!problems.empty()) return problems.error();
  return {};
}

}  // namespace baton

// Reading configs: TOML files through toml++ (its exceptions are turned into
// values here, at the edge) and command-line flags, with one validation pass.
#include "config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "file_util.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTopKeys[] = {
    "name",          "control",           "command",           "environment",
    "socket",        "working_directory", "drain_signal",      "drain_timeout",
    "ready_timeout", "restart_delay",     "restart_delay_max", "shim",
    "watchdog_sec",
};
constexpr std::string_view kSocketKeys[] = {"name",   "listen", "backlog",
                                            "v6only", "mode",   "reuseport"};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// Collects every problem found in one file, each prefixed with its position.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_region& where, std::string_view message) {
    lines_.push_back({where.begin, fmt::format("{}:{}:{}: {}", file_, where.begin.line,
                                               where.begin.column, message)});
  }
  /// A problem of the whole file, reported after the positioned ones.
  void add(std::string_view message) {
    lines_.push_back({kWholeFile, fmt::format("{}: {}", file_, message)});
  }
  bool empty() const { return lines_.empty(); }
  /// Every problem, one per line, in the order they stand in the file.
  Error error() const {
    auto sorted = lines_;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<std::string> text;
    for (const auto& line : sorted) text.push_back(line.second);
    return baton::error(fmt::format("{}", fmt::join(text, "\n")));
  }

 private:
  static constexpr toml::source_position kWholeFile{~0u, ~0u};
  std::string file_;
  std::vector<std::pair<toml::source_position, std::string>> lines_;
};

template <size_t N>
void check_keys(const toml::table& table, const std::string_view (&allowed)[N],
                std::string_view where, Problems& problems) {
  for (auto&& [key, node] : table) {
    std::string_view k = key.str();
    if (std::find(std::begin(allowed), std::end(allowed), k) != std::end(allowed)) continue;
    std::string hint;
    for (std::string_view candidate : allowed) {
      if (edit_distance(k, candidate) <= 2) hint = fmt::format(" (did you mean '{}'?)", candidate);
    }
    problems.add(key.source(), fmt::format("unknown key '{}' in {}{}", k, where, hint));
  }
}

/// Reads an optional string; reports a type error as a problem.
std::optional<std::string> get_string(const toml::table& table, std::string_view key,
                                      Problems& problems) {
  const toml::node* node = table.get(key);
  if (!node) return std::nullopt;
  if (auto s = node->value<std::string>()) return *s;
  problems.add(node->source(), fmt::format("'{}' must be a string", key));
  return std::nullopt;
}

void read_duration(const toml::table& table, std::string_view key, Millis& out,
                   Problems& problems) {
  const toml::node* node = table.get(key);
  if (!node) return;
  auto text = node->value<std::string>();
  if (!text) {
    problems.add(node->source(),
                 fmt::format("'{}' must be a string with a unit, e.g. \"30s\"", key));
    return;
  }
  auto d = parse_duration(*text);
  if (!d) return problems.add(node->source(), fmt::format("'{}': {}", key, d.error().message));
  out = *d;
}

void read_command(const toml::table& table, Config& config, Problems& problems) {
  const toml::node* node = table.get("command");
  if (!node)
    return problems.add("missing 'command' (the app to run, e.g. [\"./app\", \"--flag\"])");
  const toml::array* array = node->as_array();
  if (!array) return problems.add(node->source(), "'command' must be an array of strings");
  if (array->empty()) {
    return problems.add(node->source(), "'command' is empty: give the program and its arguments");
  }
  for (const toml::node& arg : *array) {
    auto s = arg.value<std::string>();
    if (!s) return problems.add(arg.source(), "'command' must be an array of strings");
    config.command.push_back(*s);
  }
}

void read_environment(const toml::table& table, Config& config, Problems& problems) {
  const toml::node* node = table.get("environment");
  if (!node) return;
  const toml::table* env = node->as_table();
  if (!env) return problems.add(node->source(), "'environment' must be a table of strings");
  // toml::table keeps keys sorted; the app gets them in the order written.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, value] : *env) entries.emplace_back(&key, &value);
  std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) {
    return x.first->source().begin < y.first->source().begin;
  });
  for (auto [key, value] : entries) {
    auto s = value->value<std::string>();
    if (!s) {
      problems.add(value->source(), fmt::format("environment '{}' must be a string", key->str()));
      continue;
    }
    config.environment.emplace_back(std::string(key->str()), *s);
  }
}

void read_socket(const toml::table& t, Config& config, Problems& problems) {
  check_keys(t, kSocketKeys, "[[socket]]", problems);
  auto name = get_string(t, "name", problems);
  auto listen = get_string(t, "listen", problems);
  if (!name || !listen) {
    return problems.add(t.source(), "[[socket]] needs 'name' and 'listen'");
  }
  auto spec = parse_socket_url(*listen, config.base_dir);
  if (!spec) return problems.add(t.get("listen")->source(), spec.error().message);
  if (auto s = check_socket_name(*name); !s) {
    return problems.add(t.get("name")->source(), s.error().message);
  }
  spec->name = *name;
  if (const toml::node* n = t.get("backlog")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 65535)
      problems.add(n->source(), "'backlog' must be 1 to 65535");
    else
      spec->backlog = static_cast<int>(*v);
  }
  for (auto [key, field] : {std::pair{"v6only", &spec->v6only}, {"reuseport", &spec->reuseport}}) {
    if (const toml::node* n = t.get(key)) {
      if (auto v = n->value<bool>())
        *field = *v;
      else
        problems.add(n->source(), fmt::format("'{}' must be true or false", key));
    }
  }
  if (auto mode = get_string(t, "mode", problems)) {
    auto m = parse_mode(*mode);
    if (!m)
      problems.add(t.get("mode")->source(), m.error().message);
    else
      spec->mode = *m;
  }
  config.sockets.push_back(std::move(*spec));
}

void read_sockets(const toml::table& table, Config& config, Problems& problems) {
  const toml::node* node = table.get("socket");
  if (!node) return;
  const toml::array* array = node->as_array();
  if (!array) return problems.add(node->source(), "write sockets as [[socket]] tables");
  for (const toml::node& item : *array) {
    if (const toml::table* t = item.as_table())
      read_socket(*t, config, problems);
    else
      problems.add(item.source(), "write sockets as [[socket]] tables");
  }
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.starts_with('/') || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

std::string base_dir_of(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return (ec ? fs::path(path) : abs).parent_path().lexically_normal().string();
}

/// The service name and control path, shared by full parsing and clients.
void read_identity(const toml::table& table, const std::string& path, Config& config,
                   Problems& problems) {
  config.name = get_string(table, "name", problems).value_or(fs::path(path).stem().string());
  if (auto control = get_string(table, "control", problems)) {
    config.control_path = resolve(config.base_dir, *control);
  } else {
    config.control_path = default_control_path(config.name);
  }
}

void read_settings(const toml::table& table, Config& config, Problems& problems) {
  check_keys(table, kTopKeys, "the top level", problems);
  read_command(table, config, problems);
  read_environment(table, config, problems);
  read_sockets(table, config, problems);
  if (auto wd = get_string(table, "working_directory", problems)) {
    config.working_directory = resolve(config.base_dir, *wd);
  }
  if (auto sig = get_string(table, "drain_signal", problems)) {
    auto s = parse_signal(*sig);
    if (s)
      config.drain_signal = *s;
    else
      problems.add(table.get("drain_signal")->source(), s.error().message);
  }
  if (const toml::node* n = table.get("shim")) {
    if (auto v = n->value<bool>())
      config.shim = *v;
    else
      problems.add(n->source(), "'shim' must be true or false");
  }
  read_duration(table, "drain_timeout", config.drain_timeout, problems);
  read_duration(table, "watchdog_sec", config.watchdog_sec, problems);
  read_duration(table, "ready_timeout", config.ready_timeout, problems);
  read_duration(table, "restart_delay", config.restart_delay, problems);
  read_duration(table, "restart_delay_max", config.restart_delay_max, problems);
}

/// Checks that hold whatever the config came from.
void validate(Config& config, Problems& problems) {
  if (config.command.empty()) {
    // A config file reports this where it reads 'command'.
    if (config.file.empty()) problems.add("the command is empty");
  } else if (config.command[0].empty()) {
    problems.add("the command's program name is empty");
  } else if (config.command[0].find('/') != std::string::npos) {
    config.command[0] = resolve(config.base_dir, config.command[0]);
  }
  if (config.sockets.empty()) {
    problems.add("no sockets configured (add a [[socket]] table or --listen NAME=URL)");
  }
  std::set<std::string> names, addresses;
  for (const SocketSpec& s : config.sockets) {
    if (!names.insert(s.name).second) {
      problems.add(fmt::format("socket name '{}' is used twice", s.name));
    }
    std::string key = fmt::format("{}:{}", s.kind_name(), s.address());
    if (!(s.kind != SocketKind::kUnix && s.port == 0) && !addresses.insert(key).second) {
      problems.add(fmt::format("address {} is configured twice", s.url));
    }
  }
  if (config.restart_delay_max < config.restart_delay) {
    problems.add("restart_delay_max is shorter than restart_delay");
  }
}

Result<toml::table> parse_toml(std::string_view text, const std::string& path) {
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return error(fmt::format("{}:{}:{}: {}", path, b.line, b.column, e.description()));
  }
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& path) {
  auto table = parse_toml(text, path);
  if (!table) return table.error();
  Config config;
  config.file = path;
  config.base_dir = base_dir_of(path);
  Problems problems(path);
  read_identity(*table, path, config, problems);
  read_settings(*table, config, problems);
  validate(config, problems);
  if (!problems.empty()) return problems.error();
  return config;
}

Result<Config> load_config(const std::string& path) {
  auto text = read_whole_file(path, "config");
  if (!text) return text.error();
  return parse_config(*text, path);
}

Result<std::string> read_control_path(const std::string& path) {
  auto text = read_whole_file(path, "config");
  if (!text) return text.error();
  auto table = parse_toml(*text, path);
  if (!table) return table.error();
  Config config;
  config.base_dir = base_dir_of(path);
  Problems problems(path);
  read_identity(*table, path, config, problems);
  if (!problems.empty()) return problems.error();
  return config.control_path;
}

Result<Config> config_from_flags(const std::vector<std::string>& listens,
                                 const std::string& control_path, std::vector<std::string> command,
                                 bool shim) {
  Config config;
  config.command = std::move(command);
  config.shim = shim;
  config.control_path = control_path.empty() ? default_control_path(config.name) : control_path;
  Problems problems("baton run");
  for (const std::string& flag : listens) {
    size_t eq = flag.find('=');
    if (eq == std::string::npos) {
      problems.add(
          fmt::format("--listen {}: write NAME=URL, e.g. http=tcp://127.0.0.1:8080", flag));
      continue;
    }
    auto spec = parse_socket_url(flag.substr(eq + 1));
    Status name_ok = check_socket_name(flag.substr(0, eq));
    if (!spec)
      problems.add(fmt::format("--listen {}: {}", flag, spec.error().message));
    else if (!name_ok)
      problems.add(fmt::format("--listen {}: {}", flag, name_ok.error().message));
    else {
      spec->name = flag.substr(0, eq);
      config.sockets.push_back(std::move(*spec));
    }
  }
  validate(config, problems);
  if (!problems.empty()) return problems.error();
  return config;
}

std::string default_control_path(const std::string& name) {
  if (geteuid() != 0) {
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
      return fmt::format("{}/baton/{}.sock", xdg, name);
    }
    return fmt::format("/tmp/baton-{}/{}.sock", geteuid(), name);
  }
  return fmt::format("/run/baton/{}.sock", name);
}

namespace {
constexpr std::pair<std::string_view, int> kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"ALRM", SIGALRM}, {"ABRT", SIGABRT},
};
}  // namespace

Result<int> parse_signal(std::string_view text) {
  std::string_view bare = text.starts_with("SIG") ? text.substr(3) : text;
  for (auto [name, number] : kSignals) {
    if (bare == name) return number;
  }
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && number > 0 &&
      number < NSIG) {
    return number;
  }
  return error(fmt::format("unknown signal \"{}\" (write e.g. \"SIGTERM\")", text));
}

std::string signal_name(int sig) {
  for (auto [name, number] : kSignals) {
    if (number == sig) return fmt::format("SIG{}", name);
  }
  return fmt::format("signal {}", sig);
}

}  // namespace baton

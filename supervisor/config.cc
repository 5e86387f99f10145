// Reading configs: TOML files through toml++ (its exceptions are turned into
// values here, at the edge) and command-line flags, with one validation pass.
// The checked-deploy settings ([ready], [[smoke]], [hooks], listeners) are
// read in config_checks.cc; what both files share is in config_read.h. The
// text checks made before parsing are in toml_guard.cc; the file-system
// checks of a parsed config (check_runnable) in config_check.cc.
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "config_read.h"
#include "file_util.h"
#include "server_presets.h"
#include "toml_guard.h"

namespace baton {

namespace fs = std::filesystem;
using namespace config_read;

namespace {

/// The shortest restart_delay and restart_delay_max.
constexpr Millis kMinRestartDelay{10};

constexpr std::string_view kTopKeys[] = {
    "name",          "control",       "command",
    "environment",   "socket",        "working_directory",
    "server",        "drain_signal",  "drain_timeout",
    "ready_timeout", "restart_delay", "restart_delay_max",
    "shim",          "watchdog_sec",  "min_ready",
    "listeners",     "notify_socket", "ready",
    "smoke",         "hooks",         "instances",
    "strategy",      "max_surge",     "canary",
    "notify_access", "standby",       "metrics",
};
constexpr std::string_view kCanaryKeys[] = {"share", "hold"};
constexpr std::string_view kMetricsKeys[] = {"file", "interval"};
constexpr std::string_view kSocketKeys[] = {"name", "listen",    "backlog",    "v6only",
                                            "mode", "reuseport", "nonblocking"};

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

}  // namespace

namespace config_read {

void check_keys(const toml::table& table, std::span<const std::string_view> allowed,
                std::string_view where, Problems& problems) {
  for (auto&& [key, node] : table) {
    std::string_view k = key.str();
    if (std::find(std::begin(allowed), std::end(allowed), k) != std::end(allowed)) continue;
    std::string hint;
    for (std::string_view candidate : allowed) {
      // The distance is at least the difference in length; skip the work for long keys.
      if (k.size() > candidate.size() + 2 || candidate.size() > k.size() + 2) continue;
      if (edit_distance(k, candidate) <= 2) hint = fmt::format(" (did you mean '{}'?)", candidate);
    }
    problems.add(key.source(), fmt::format("unknown key '{}' in {}{}", k, where, hint));
  }
}

std::optional<std::string> get_string(const toml::table& table, std::string_view key,
                                      Problems& problems, std::string_view label) {
  const toml::node* node = table.get(key);
  if (!node) return std::nullopt;
  if (auto s = node->value<std::string>()) return *s;
  problems.add(node->source(), fmt::format("'{}' must be a string", label.empty() ? key : label));
  return std::nullopt;
}

const toml::node* read_duration(const toml::table& table, std::string_view key, Millis& out,
                                Problems& problems, std::string_view label) {
  const toml::node* node = table.get(key);
  if (!node) return nullptr;
  if (label.empty()) label = key;
  auto text = node->value<std::string>();
  if (!text) {
    problems.add(node->source(),
                 fmt::format("'{}' must be a string with a unit, e.g. \"30s\"", label));
    return nullptr;
  }
  auto d = parse_duration(*text);
  if (!d) {
    problems.add(node->source(), fmt::format("'{}': {}", label, d.error().message));
    return nullptr;
  }
  out = *d;
  return node;
}

void read_bool(const toml::table& table, std::string_view key, bool& out, Problems& problems,
               std::string_view label) {
  const toml::node* node = table.get(key);
  if (!node) return;
  if (const auto* b = node->as_boolean())
    out = b->get();
  else
    problems.add(node->source(),
                 fmt::format("'{}' must be true or false", label.empty() ? key : label));
}

std::optional<std::vector<std::string>> read_argv(const toml::node& node, std::string_view label,
                                                  Problems& problems) {
  const toml::array* array = node.as_array();
  if (!array) {
    problems.add(node.source(), fmt::format("'{}' must be an array of strings", label));
    return std::nullopt;
  }
  if (array->empty()) {
    problems.add(node.source(),
                 fmt::format("'{}' is empty: give the program and its arguments", label));
    return std::nullopt;
  }
  std::vector<std::string> argv;
  for (const toml::node& arg : *array) {
    auto s = arg.value<std::string>();
    if (!s) {
      problems.add(arg.source(), fmt::format("'{}' must be an array of strings", label));
      return std::nullopt;
    }
    argv.push_back(*s);
  }
  return argv;
}

toml::source_position key_position(const toml::table& table, std::string_view key) {
  auto it = table.find(key);
  return it == table.end() ? table.source().begin : it->first.source().begin;
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.starts_with('/') || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

}  // namespace config_read

namespace {

/// restart_delay and restart_delay_max: a crashing app is restarted after
/// this long, so a delay near zero would spawn it as fast as it can crash.
void read_restart_delay(const toml::table& table, std::string_view key, Millis& out,
                        Problems& problems) {
  const toml::node* node = read_duration(table, key, out, problems);
  if (node && out < kMinRestartDelay) {
    problems.add(node->source(),
                 fmt::format("'{}' is {}; it must be at least {} (a shorter delay makes a crash "
                             "loop spin)",
                             key, format_duration(out), format_duration(kMinRestartDelay)));
  }
}

void read_command(const toml::table& table, Config& config, Problems& problems) {
  const toml::node* node = table.get("command");
  if (!node)
    return problems.add("missing 'command' (the app to run, e.g. [\"./app\", \"--flag\"])");
  if (auto argv = read_argv(*node, "command", problems)) config.command = std::move(*argv);
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

/// The default of a socket's `nonblocking`: the server preset's.
bool preset_nonblocking(const Config& config) {
  const ServerPreset* preset = find_server_preset(config.server);
  return preset && preset->nonblocking;
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
  spec->nonblocking = preset_nonblocking(config);
  read_bool(t, "nonblocking", spec->nonblocking, problems);
  if (const toml::node* n = t.get("backlog")) {
    // Only an integer: toml++ converting a float such as 1e300 would overflow.
    const auto* v = n->as_integer();
    if (!v || v->get() < 1 || v->get() > 65535)
      problems.add(n->source(), "'backlog' must be 1 to 65535");
    else
      spec->backlog = static_cast<int>(v->get());
  }
  read_bool(t, "v6only", spec->v6only, problems);
  read_bool(t, "reuseport", spec->reuseport, problems);
  if (auto mode = get_string(t, "mode", problems)) {
    auto m = parse_mode(*mode);
    if (!m)
      problems.add(t.get("mode")->source(), m.error().message);
    else
      spec->mode = *m;
  }
  config.sockets.push_back(std::move(*spec));
}

/// Where a [[socket]]'s `name` and `listen` keys stand, for messages about it.
struct SocketKeys {
  toml::source_position name, listen;
};

/// Refuses a second socket with the name or address of an earlier one.
/// `keys` is empty for --listen flags; for a file it has one entry per
/// socket, and problems stand at the second socket's key and name the
/// first one's line.
void check_unique_sockets(const std::vector<SocketSpec>& sockets,
                          const std::vector<SocketKeys>& keys, Problems& problems) {
  auto report = [&](size_t i, size_t first, toml::source_position SocketKeys::*key,
                    const std::string& message) {
    if (keys.empty()) return problems.add(message);
    problems.add(keys[i].*key,
                 fmt::format("{} (first at line {})", message, (keys[first].*key).line));
  };
  std::map<std::string, size_t> names;
  std::map<SocketAddress, size_t> addresses;
  for (size_t i = 0; i < sockets.size(); ++i) {
    const SocketSpec& s = sockets[i];
    if (auto [first, fresh] = names.emplace(s.name, i); !fresh) {
      report(i, first->second, &SocketKeys::name,
             fmt::format("socket name '{}' is used twice", s.name));
    }
    // Port 0 asks the kernel for a fresh port each time, so it may repeat.
    if (s.kind != SocketKind::kUnix && s.port == 0) continue;
    if (auto [first, fresh] = addresses.emplace(s.socket_address(), i); !fresh) {
      report(i, first->second, &SocketKeys::listen,
             fmt::format("address {} is configured twice", s.url));
    }
  }
}

/// Returns whether every socket written was read.
bool read_sockets(const toml::table& table, Config& config, Problems& problems) {
  const toml::node* node = table.get("socket");
  if (!node) return true;
  const toml::array* array = node->as_array();
  if (!array) {
    problems.add(node->source(), "write sockets as [[socket]] tables");
    return false;
  }
  std::vector<SocketKeys> keys;  // one per socket read
  for (const toml::node& item : *array) {
    const toml::table* t = item.as_table();
    if (!t) {
      problems.add(item.source(), "write sockets as [[socket]] tables");
      continue;
    }
    size_t before = config.sockets.size();
    read_socket(*t, config, problems);
    if (config.sockets.size() > before) {
      keys.push_back({key_position(*t, "name"), key_position(*t, "listen")});
    }
  }
  check_unique_sockets(config.sockets, keys, problems);
  return keys.size() == array->size();
}

std::string base_dir_of(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return (ec ? fs::path(path) : abs).parent_path().lexically_normal().string();
}

/// The control path of a service: `control` if set (relative to the
/// config's directory), else the default for `name`.
std::string control_path_of(const std::string& base_dir, const std::string& name,
                            const std::optional<std::string>& control) {
  return control ? resolve(base_dir, *control) : default_control_path(name);
}

/// The service name and control path, shared by full parsing and clients.
void read_identity(const toml::table& table, const std::string& path, Config& config,
                   Problems& problems) {
  config.name = get_string(table, "name", problems).value_or(fs::path(path).stem().string());
  config.control_path =
      control_path_of(config.base_dir, config.name, get_string(table, "control", problems));
}

/// `server = "nginx"`: the preset's drain signal (drain_signal, read after
/// it, wins) and its sockets' `nonblocking` default.
void read_server(const toml::table& table, Config& config, Problems& problems) {
  auto name = get_string(table, "server", problems);
  if (!name) return;
  const ServerPreset* preset = find_server_preset(*name);
  if (!preset) {
    std::vector<std::string_view> names;
    for (const ServerPreset& p : server_presets()) names.push_back(p.name);
    problems.add(table.get("server")->source(),
                 fmt::format("unknown server '{}'; baton has presets for: {}", *name,
                             fmt::join(names, ", ")));
    return;
  }
  config.server = preset->name;
  config.drain_signal = preset->drain_signal;
}

/// Reads an optional integer from `min` to `max`; a float is not one.
void read_int(const toml::table& table, std::string_view key, int min, int max, int& out,
              Problems& problems) {
  const toml::node* n = table.get(key);
  if (!n) return;
  const auto* v = n->as_integer();
  if (!v || v->get() < min || v->get() > max) {
    return problems.add(n->source(),
                        fmt::format("'{}' must be an integer from {} to {}", key, min, max));
  }
  out = static_cast<int>(v->get());
}

void read_notify_access(const toml::table& table, Config& config, Problems& problems) {
  auto access = get_string(table, "notify_access", problems);
  if (!access) return;
  if (*access == "main" || *access == "exec" || *access == "all") {
    config.notify_access = *access == "main"   ? Config::NotifyAccess::kMain
                           : *access == "exec" ? Config::NotifyAccess::kExec
                                               : Config::NotifyAccess::kAll;
  } else {
    problems.add(table.get("notify_access")->source(),
                 "'notify_access' must be \"main\" (the main pid's messages), \"exec\" (also "
                 "those of the processes it started) or \"all\" (any process of its group)");
  }
}

void read_instances(const toml::table& table, Config& config, Problems& problems) {
  read_int(table, "instances", 1, kMaxInstances, config.instances, problems);
  if (auto strategy = get_string(table, "strategy", problems)) {
    if (*strategy == "all-at-once" || *strategy == "rolling") {
      config.strategy =
          *strategy == "rolling" ? Config::Strategy::kRolling : Config::Strategy::kAllAtOnce;
    } else {
      problems.add(table.get("strategy")->source(),
                   "'strategy' must be \"all-at-once\" (every new instance ready, then every old "
                   "one drains) or \"rolling\" (max_surge at a time)");
    }
  }
  read_int(table, "max_surge", 1, kMaxInstances, config.max_surge, problems);
  if (const toml::node* n = table.get("max_surge")) {
    if (config.strategy != Config::Strategy::kRolling) {
      problems.add(n->source(), "'max_surge' applies to strategy = \"rolling\" only");
    } else if (config.max_surge > config.instances) {
      problems.add(n->source(), fmt::format("'max_surge' ({}) is more than 'instances' ({})",
                                            config.max_surge, config.instances));
    }
  }
}

void read_canary(const toml::table& top, Config& config, Problems& problems) {
  const toml::node* node = top.get("canary");
  if (!node) return;
  const toml::table* t = node->as_table();
  if (!t) return problems.add(node->source(), "'canary' must be a table ([canary])");
  check_keys(*t, kCanaryKeys, "[canary]", problems);
  Config::Canary canary;
  if (auto share = get_string(*t, "share", problems, "canary.share")) {
    auto parsed = parse_share(*share);
    if (!parsed) return problems.add(t->get("share")->source(), parsed.error().message);
    canary.share = *parsed;
  } else if (!t->get("share")) {
    return problems.add(node->source(), "[canary] needs a share, e.g. share = \"10%\"");
  }
  read_duration(*t, "hold", canary.hold, problems, "canary.hold");
  config.canary = canary;
}

void read_metrics(const toml::table& top, Config& config, Problems& problems) {
  const toml::node* node = top.get("metrics");
  if (!node) return;
  const toml::table* t = node->as_table();
  if (!t) return problems.add(node->source(), "'metrics' must be a table ([metrics])");
  check_keys(*t, kMetricsKeys, "[metrics]", problems);
  Config::MetricsFile metrics;
  auto file = get_string(*t, "file", problems, "metrics.file");
  if (!file) {
    if (!t->get("file")) {
      problems.add(node->source(),
                   "[metrics] needs a file, e.g. file = "
                   "\"/var/lib/prometheus/node-exporter/baton.prom\"");
    }
    return;
  }
  // node_exporter's textfile collector reads only *.prom files (a file named
  // ".prom" alone has no extension: refused too).
  if (fs::path(*file).extension() != ".prom") {
    return problems.add(t->get("file")->source(),
                        fmt::format("metrics.file \"{}\" must be named NAME.prom (the textfile "
                                    "collector reads only *.prom files)",
                                    *file));
  }
  metrics.path = resolve(config.base_dir, *file);
  if (const toml::node* n =
          read_duration(*t, "interval", metrics.interval, problems, "metrics.interval")) {
    if (metrics.interval < Millis(1000))
      problems.add(n->source(), "'metrics.interval' must be at least 1s");
  }
  config.metrics_file = metrics;
}

void read_settings(const toml::table& table, Config& config, ReadyOrigins& origins,
                   Problems& problems) {
  check_keys(table, kTopKeys, "the top level", problems);
  read_command(table, config, problems);
  read_environment(table, config, problems);
  read_server(table, config, problems);  // before the sockets: their defaults
  origins.sockets_complete = read_sockets(table, config, problems);
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
  if (auto where = get_string(table, "notify_socket", problems)) {
    if (*where == "path" || *where == "abstract")
      config.abstract_notify_socket = *where == "abstract";
    else
      problems.add(table.get("notify_socket")->source(),
                   "'notify_socket' must be \"path\" (a socket file beside the control socket) "
                   "or \"abstract\"");
  }
  read_bool(table, "shim", config.shim, problems);
  read_duration(table, "drain_timeout", config.drain_timeout, problems);
  read_duration(table, "watchdog_sec", config.watchdog_sec, problems);
  read_duration(table, "ready_timeout", config.ready_timeout, problems);
  read_duration(table, "min_ready", config.min_ready, problems);
  read_duration(table, "standby", config.standby, problems);
  read_restart_delay(table, "restart_delay", config.restart_delay, problems);
  read_restart_delay(table, "restart_delay_max", config.restart_delay_max, problems);
  read_instances(table, config, problems);
  read_notify_access(table, config, problems);
  read_canary(table, config, problems);
  read_metrics(table, config, problems);
  read_checks(table, config, origins, problems);
}

/// Checks that hold whatever the config came from.
void validate(Config& config, const ReadyOrigins& origins, Problems& problems) {
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
  // A config file checks this as it reads [[socket]] tables, with positions.
  if (config.file.empty()) check_unique_sockets(config.sockets, {}, problems);
  if (config.restart_delay_max < config.restart_delay) {
    problems.add("restart_delay_max is shorter than restart_delay");
  }
  resolve_check_programs(config, problems);
  validate_ready(config, origins, problems);
}

Result<toml::table> parse_toml(std::string_view text, const std::string& path) {
  if (Status s = check_toml_limits(text, path); !s) return s.error();
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return error(fmt::format("{}:{}:{}: {}", path, b.line, b.column, e.description()));
  }
}

/// The control path from the plain lines of a config that did not parse;
/// `parse_error` when they name neither the service nor its socket.
Result<std::string> control_path_from_lines(std::string_view text, const std::string& path,
                                            const Error& parse_error) {
  IdentityLines lines = read_identity_lines(text);
  if (!lines.name && !lines.control) return parse_error;
  std::string name = lines.name.value_or(fs::path(path).stem().string());
  return control_path_of(base_dir_of(path), name, lines.control);
}

void read_listen_flags(const std::vector<std::string>& listens, Config& config,
                       Problems& problems) {
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
      spec->nonblocking = preset_nonblocking(config);
      config.sockets.push_back(std::move(*spec));
    }
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
  ReadyOrigins origins{Origin("ready.http"), Origin("ready.tcp"), Origin("ready.socket"),
                       Origin("ready.timeout"), Origin("ready.notify")};
  read_identity(*table, path, config, problems);
  read_settings(*table, config, origins, problems);
  validate(config, origins, problems);
  if (!problems.empty()) return problems.error();
  return config;
}

Result<Config> load_config(const std::string& path) {
  auto head = read_file_head(path, "config", kMaxConfigBytes);
  if (!head) return head.error();
  if (!head->complete) return config_too_large(path, head->size);
  return parse_config(head->text, path);
}

Result<std::string> read_control_path(const std::string& path) {
  auto head = read_file_head(path, "config", kMaxConfigBytes);
  if (!head) return head.error();
  Result<toml::table> table =
      head->complete ? parse_toml(head->text, path) : config_too_large(path, head->size);
  if (!table) return control_path_from_lines(head->text, path, table.error());
  Config config;
  config.base_dir = base_dir_of(path);
  Problems problems(path);
  read_identity(*table, path, config, problems);
  if (!problems.empty()) return problems.error();
  return config.control_path;
}

Result<Config> config_from_flags(const RunFlags& flags) {
  Config config;
  config.command = flags.command;
  config.shim = flags.shim;
  config.control_path =
      flags.control_path.empty() ? default_control_path(config.name) : flags.control_path;
  Problems problems("baton run");
  read_listen_flags(flags.listens, config, problems);
  read_check_flags(flags.checks, config, problems);
  ReadyOrigins origins{Origin("--ready-http"), Origin("--ready-tcp"), Origin("--ready-socket"),
                       Origin("--probe-timeout", !flags.checks.probe_timeout.empty()),
                       Origin("--ready-notify")};
  validate(config, origins, problems);
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

std::string notify_socket_path(const std::string& control_path) {
  // Absolute: the app may run in another working directory.
  std::error_code ec;
  fs::path absolute = fs::absolute(control_path, ec);
  return (ec ? control_path : absolute.string()) + ".notify";
}

namespace {
constexpr std::pair<std::string_view, int> kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"ALRM", SIGALRM}, {"ABRT", SIGABRT},
};
}  // namespace

Result<uint32_t> parse_share(std::string_view text) {
  auto bad = [&] {
    return error(fmt::format(
        "a canary share is a percentage above 0 and below 100, with at most two decimals "
        "(\"10%\", \"2.5%\"), not \"{}\"",
        text));
  };
  if (!text.ends_with('%')) return bad();
  std::string_view number = text.substr(0, text.size() - 1);
  size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : number.substr(dot + 1);
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (whole.empty() || whole.size() > 2 || !digits(whole) || fraction.size() > 2 ||
      !digits(fraction) || (dot != std::string_view::npos && fraction.empty())) {
    return bad();
  }
  uint32_t value = 0;
  for (char c : whole) value = value * 10 + static_cast<uint32_t>(c - '0');
  value *= 100;
  uint32_t scale = 10;
  for (char c : fraction) {
    value += static_cast<uint32_t>(c - '0') * scale;
    scale /= 10;
  }
  if (value == 0 || value >= 10'000) return bad();
  return value;
}

std::string format_share(uint32_t share) {
  if (share % 100 == 0) return fmt::format("{}%", share / 100);
  if (share % 10 == 0) return fmt::format("{}.{}%", share / 100, share % 100 / 10);
  return fmt::format("{}.{:02}%", share / 100, share % 100);
}

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
  // Signals a config does not name (SIGSEGV, SIGABRT) still end apps.
  if (const char* abbrev = sigabbrev_np(sig)) return fmt::format("SIG{}", abbrev);
  return fmt::format("signal {}", sig);
}

}  // namespace baton

// Reading configs: TOML files through toml++ (its exceptions are turned into
// values here, at the edge) and command-line flags, with one validation pass.
// The text checks made before parsing are in toml_guard.cc; the file-system
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
// toml++ asserts things about its input (TOML_ASSERT_ASSUME in parse_time,
// parse_value) that a malformed config breaks; its release path then reports
// a parse error, but without NDEBUG the assert aborts baton. A config must
// never do that, so its asserts are off here, the one file that includes it.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>

#include "file_util.h"
#include "toml_guard.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

/// The shortest restart_delay and restart_delay_max.
constexpr Millis kMinRestartDelay{10};
/// The shortest probe interval and timeout, and command timeout: a probe
/// retried faster only loads the candidate, and a shorter limit fails
/// whatever it runs.
constexpr Millis kMinCheckTime{10};
/// The default timeouts of smoke checks and hooks (a hook may migrate a database).
constexpr Millis kSmokeTimeout{60'000};
constexpr Millis kHookTimeout{600'000};

constexpr std::string_view kTopKeys[] = {
    "name",
    "control",
    "command",
    "environment",
    "socket",
    "working_directory",
    "drain_signal",
    "drain_timeout",
    "ready_timeout",
    "restart_delay",
    "restart_delay_max",
    "shim",
    "watchdog_sec",
    "min_ready",
    "listeners",
    "ready",
    "smoke",
    "hooks",
};
constexpr std::string_view kSocketKeys[] = {"name",   "listen", "backlog",
                                            "v6only", "mode",   "reuseport"};
constexpr std::string_view kReadyKeys[] = {"notify", "http",     "tcp",    "exec",
                                           "socket", "interval", "timeout"};
constexpr std::string_view kHttpKeys[] = {"path", "status", "body", "host"};
constexpr std::string_view kCommandKeys[] = {"name", "command", "timeout"};
constexpr std::string_view kHookKeys[] = {"pre_reload", "after_drained"};

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
    add(where.begin, message);
  }
  void add(const toml::source_position& where, std::string_view message) {
    lines_.push_back(
        {where, fmt::format("{}:{}:{}: {}", file_, where.line, where.column, message)});
  }
  /// A problem of the whole file, reported after the positioned ones.
  void add(std::string_view message) {
    lines_.push_back({kWholeFile, fmt::format("{}: {}", file_, message)});
  }
  /// At `where` when known, else a problem of the whole file.
  void add(const std::optional<toml::source_position>& where, std::string_view message) {
    if (where)
      add(*where, message);
    else
      add(message);
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
      // The distance is at least the difference in length; skip the work for long keys.
      if (k.size() > candidate.size() + 2 || candidate.size() > k.size() + 2) continue;
      if (edit_distance(k, candidate) <= 2) hint = fmt::format(" (did you mean '{}'?)", candidate);
    }
    problems.add(key.source(), fmt::format("unknown key '{}' in {}{}", k, where, hint));
  }
}

/// Reads an optional string; reports a type error as a problem. `label`
/// names the key in messages (default: `key`; "ready.socket" for a nested one).
std::optional<std::string> get_string(const toml::table& table, std::string_view key,
                                      Problems& problems, std::string_view label = {}) {
  const toml::node* node = table.get(key);
  if (!node) return std::nullopt;
  if (auto s = node->value<std::string>()) return *s;
  problems.add(node->source(), fmt::format("'{}' must be a string", label.empty() ? key : label));
  return std::nullopt;
}

/// Reads an optional duration into `out`; returns its node when it was read.
const toml::node* read_duration(const toml::table& table, std::string_view key, Millis& out,
                                Problems& problems, std::string_view label = {}) {
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

/// A duration of a check (probe interval and timeout, command timeouts):
/// at least kMinCheckTime.
void read_check_time(const toml::table& table, std::string_view key, std::string_view label,
                     Millis& out, Problems& problems) {
  const toml::node* node = read_duration(table, key, out, problems, label);
  if (node && out < kMinCheckTime) {
    problems.add(node->source(), fmt::format("'{}' is {}; it must be at least {}", label,
                                             format_duration(out), format_duration(kMinCheckTime)));
  }
}

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

/// Reads an optional boolean; an integer is not one (toml++ would convert it).
void read_bool(const toml::table& table, std::string_view key, bool& out, Problems& problems,
               std::string_view label = {}) {
  const toml::node* node = table.get(key);
  if (!node) return;
  if (const auto* b = node->as_boolean())
    out = b->get();
  else
    problems.add(node->source(),
                 fmt::format("'{}' must be true or false", label.empty() ? key : label));
}

/// A program and its arguments: a non-empty array of strings.
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

/// Where `key` of `table` is written (toml++ gives a value's node the
/// position of the value).
toml::source_position key_position(const toml::table& table, std::string_view key) {
  auto it = table.find(key);
  return it == table.end() ? table.source().begin : it->first.source().begin;
}

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

/// Where a setting that validate() checks against the rest came from, for
/// its messages: a file's dotted key and its position, or the flag.
struct Origin {
  explicit Origin(std::string name, bool given = false) : name(std::move(name)), given(given) {}

  std::string name;
  std::optional<toml::source_position> at;
  /// Written in the file or given as a flag, rather than left at its default.
  bool given = false;
};

/// The origins of the readiness settings validate() cross-checks.
struct ReadyOrigins {
  Origin http, tcp, socket, timeout, notify;
  /// Every [[socket]] table was read (none was refused): only then can a
  /// missing socket be blamed on ready.socket.
  bool sockets_complete = true;
};

std::optional<ListenerMode> parse_listener_mode(std::string_view text) {
  if (text == "per-generation") return ListenerMode::kPerGeneration;
  if (text == "shared") return ListenerMode::kShared;
  return std::nullopt;
}

/// A request target or Host header value must not break the request line.
bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) == 0x7f;
  });
}

/// The path of an http probe; `label` names the key or flag that gave it.
Status check_http_path(std::string_view label, std::string_view path) {
  if (!path.starts_with('/')) {
    return error(fmt::format("{}: path \"{}\" must start with '/'", label, path));
  }
  if (has_space_or_control(path)) {
    return error(fmt::format(
        "{}: the path must not contain spaces or control characters (write them %-encoded)",
        label));
  }
  return {};
}

void read_http_table(const toml::table& t, HttpCheck& http, Problems& problems) {
  check_keys(t, kHttpKeys, "[ready.http]", problems);
  if (auto path = get_string(t, "path", problems, "ready.http.path")) {
    http.path = *path;
    if (Status s = check_http_path("ready.http", *path); !s) {
      problems.add(t.get("path")->source(), s.error().message);
    }
  }
  if (const toml::node* n = t.get("status")) {
    // Only an integer: toml++ would convert a float.
    const auto* v = n->as_integer();
    if (!v || v->get() < 100 || v->get() > 599)
      problems.add(n->source(), "'ready.http.status' must be an HTTP status from 100 to 599");
    else
      http.status = static_cast<int>(v->get());
  }
  http.body = get_string(t, "body", problems, "ready.http.body").value_or("");
  if (auto host = get_string(t, "host", problems, "ready.http.host")) {
    http.host = *host;
    if (has_space_or_control(*host)) {
      problems.add(t.get("host")->source(),
                   "'ready.http.host' must not contain spaces or control characters");
    }
  }
}

/// `http = "/health"`, or a [ready.http] table.
void read_http_check(const toml::table& ready, ReadyChecks& checks, Problems& problems) {
  const toml::node* node = ready.get("http");
  if (!node) return;
  HttpCheck http;
  if (auto path = node->value<std::string>()) {
    http.path = *path;
    if (Status s = check_http_path("ready.http", *path); !s) {
      problems.add(node->source(), s.error().message);
    }
  } else if (const toml::table* t = node->as_table()) {
    read_http_table(*t, http, problems);
  } else {
    return problems.add(node->source(),
                        "'ready.http' must be a path such as \"/health\" or a [ready.http] table");
  }
  checks.http = std::move(http);
}

/// Records where the [ready] keys validate() cross-checks stand.
void note_ready_origins(const toml::table& t, ReadyOrigins& origins) {
  std::pair<Origin*, std::string_view> keys[] = {{&origins.http, "http"},
                                                 {&origins.tcp, "tcp"},
                                                 {&origins.socket, "socket"},
                                                 {&origins.timeout, "timeout"},
                                                 {&origins.notify, "notify"}};
  for (auto [origin, key] : keys) {
    if (!t.contains(key)) continue;
    origin->at = key_position(t, key);
    origin->given = true;
  }
}

void read_ready(const toml::table& top, Config& config, ReadyOrigins& origins, Problems& problems) {
  const toml::node* node = top.get("ready");
  if (!node) return;
  const toml::table* t = node->as_table();
  if (!t) return problems.add(node->source(), "'ready' must be a table ([ready])");
  check_keys(*t, kReadyKeys, "[ready]", problems);
  note_ready_origins(*t, origins);
  ReadyChecks& ready = config.ready;
  read_http_check(*t, ready, problems);
  read_bool(*t, "tcp", ready.tcp, problems, "ready.tcp");
  if (const toml::node* exec = t->get("exec")) {
    ready.exec = read_argv(*exec, "ready.exec", problems).value_or(std::vector<std::string>{});
  }
  if (auto socket = get_string(*t, "socket", problems, "ready.socket")) {
    if (socket->empty()) {
      problems.add(t->get("socket")->source(),
                   "'ready.socket' is empty: name a [[socket]], or leave it out for the first "
                   "tcp or unix socket");
    }
    ready.socket = *socket;
  }
  read_check_time(*t, "interval", "ready.interval", ready.interval, problems);
  read_check_time(*t, "timeout", "ready.timeout", ready.timeout, problems);
  // READY=1 is what makes an instance ready unless a probe does; with a
  // probe it is asked for too only when notify = true says so.
  ready.notify = !ready.any_probe();
  read_bool(*t, "notify", ready.notify, problems, "ready.notify");
}

/// A smoke check or hook written as a table: `command`, optional `name`
/// and `timeout`. `where` names the table in messages, `prefix` its keys.
std::optional<CheckCommand> read_check_table(const toml::table& t, std::string_view where,
                                             std::string_view prefix, Millis timeout,
                                             Problems& problems) {
  check_keys(t, kCommandKeys, where, problems);
  CheckCommand check;
  check.timeout = timeout;
  read_check_time(t, "timeout", fmt::format("{}.timeout", prefix), check.timeout, problems);
  auto name = get_string(t, "name", problems, fmt::format("{}.name", prefix));
  const toml::node* command = t.get("command");
  if (!command) {
    problems.add(t.source(),
                 fmt::format("{} needs 'command' (the program and its arguments)", where));
    return std::nullopt;
  }
  auto argv = read_argv(*command, fmt::format("{}.command", prefix), problems);
  if (!argv) return std::nullopt;
  check.command = std::move(*argv);
  check.name = name && !name->empty() ? *name : fmt::format("{}", fmt::join(check.command, " "));
  return check;
}

void read_smoke(const toml::table& top, Config& config, Problems& problems) {
  const toml::node* node = top.get("smoke");
  if (!node) return;
  const toml::array* array = node->as_array();
  if (!array) return problems.add(node->source(), "write smoke checks as [[smoke]] tables");
  for (const toml::node& item : *array) {
    const toml::table* t = item.as_table();
    if (!t) {
      problems.add(item.source(), "write smoke checks as [[smoke]] tables");
      continue;
    }
    auto check = read_check_table(*t, "[[smoke]]", "smoke", kSmokeTimeout, problems);
    if (check) config.smoke.push_back(std::move(*check));
  }
}

/// `pre_reload = ["./bin/migrate", "up"]`, or a table with `command`.
std::optional<CheckCommand> read_hook(const toml::table& hooks, std::string_view key,
                                      Problems& problems) {
  const toml::node* node = hooks.get(key);
  if (!node) return std::nullopt;
  const std::string label = fmt::format("hooks.{}", key);
  if (const toml::table* t = node->as_table()) {
    return read_check_table(*t, label, label, kHookTimeout, problems);
  }
  if (!node->is_array()) {
    problems.add(node->source(),
                 fmt::format("'{}' must be a command array or a table with 'command'", label));
    return std::nullopt;
  }
  auto argv = read_argv(*node, label, problems);
  if (!argv) return std::nullopt;
  return CheckCommand{fmt::format("{}", fmt::join(*argv, " ")), std::move(*argv), kHookTimeout};
}

void read_hooks(const toml::table& top, Config& config, Problems& problems) {
  const toml::node* node = top.get("hooks");
  if (!node) return;
  const toml::table* t = node->as_table();
  if (!t) return problems.add(node->source(), "'hooks' must be a table ([hooks])");
  check_keys(*t, kHookKeys, "[hooks]", problems);
  config.pre_reload = read_hook(*t, "pre_reload", problems);
  config.after_drained = read_hook(*t, "after_drained", problems);
}

void read_listeners(const toml::table& top, Config& config, Problems& problems) {
  auto text = get_string(top, "listeners", problems);
  if (!text) return;
  if (auto mode = parse_listener_mode(*text))
    config.listeners = *mode;
  else
    problems.add(top.get("listeners")->source(),
                 "'listeners' must be \"per-generation\" or \"shared\"");
}

/// The checked-deploy settings: listeners, [ready], [[smoke]] and [hooks].
void read_checks(const toml::table& top, Config& config, ReadyOrigins& origins,
                 Problems& problems) {
  read_listeners(top, config, problems);
  read_ready(top, config, origins, problems);
  read_smoke(top, config, problems);
  read_hooks(top, config, problems);
}

/// `sh -c CMD`, named CMD: a smoke check or hook given as a flag.
CheckCommand shell_check(const std::string& command_line, Millis timeout) {
  return CheckCommand{command_line, {"/bin/sh", "-c", command_line}, timeout};
}

/// A duration flag of a check, if given: at least kMinCheckTime.
void read_check_flag_time(std::string_view flag, const std::string& text, Millis& out,
                          Problems& problems) {
  if (text.empty()) return;
  auto d = parse_duration(text);
  if (!d) return problems.add(fmt::format("{} {}: {}", flag, text, d.error().message));
  if (*d < kMinCheckTime) {
    return problems.add(
        fmt::format("{} {}: it must be at least {}", flag, text, format_duration(kMinCheckTime)));
  }
  out = *d;
}

void read_check_flags(const CheckFlags& flags, Config& config, Problems& problems) {
  ReadyChecks& ready = config.ready;
  if (!flags.ready_http.empty()) {
    if (Status s = check_http_path("--ready-http", flags.ready_http); !s) {
      problems.add(s.error().message);
    }
    ready.http.emplace();
    ready.http->path = flags.ready_http;
  }
  ready.tcp = flags.ready_tcp;
  if (!flags.ready_exec.empty()) ready.exec = {"/bin/sh", "-c", flags.ready_exec};
  ready.socket = flags.ready_socket;
  read_check_flag_time("--ready-interval", flags.ready_interval, ready.interval, problems);
  read_check_flag_time("--probe-timeout", flags.probe_timeout, ready.timeout, problems);
  ready.notify = flags.ready_notify || !ready.any_probe();
  for (const std::string& smoke : flags.smoke) {
    config.smoke.push_back(shell_check(smoke, kSmokeTimeout));
  }
  if (!flags.pre_reload.empty()) config.pre_reload = shell_check(flags.pre_reload, kHookTimeout);
  if (!flags.after_drained.empty()) {
    config.after_drained = shell_check(flags.after_drained, kHookTimeout);
  }
  if (flags.listeners.empty()) return;
  if (auto mode = parse_listener_mode(flags.listeners))
    config.listeners = *mode;
  else
    problems.add(fmt::format("--listeners {}: write per-generation or shared", flags.listeners));
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

void read_settings(const toml::table& table, Config& config, ReadyOrigins& origins,
                   Problems& problems) {
  check_keys(table, kTopKeys, "the top level", problems);
  read_command(table, config, problems);
  read_environment(table, config, problems);
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
  read_bool(table, "shim", config.shim, problems);
  read_duration(table, "drain_timeout", config.drain_timeout, problems);
  read_duration(table, "watchdog_sec", config.watchdog_sec, problems);
  read_duration(table, "ready_timeout", config.ready_timeout, problems);
  read_duration(table, "min_ready", config.min_ready, problems);
  read_restart_delay(table, "restart_delay", config.restart_delay, problems);
  read_restart_delay(table, "restart_delay_max", config.restart_delay_max, problems);
  read_checks(table, config, origins, problems);
}

/// Resolves a check's program as `command`'s is resolved; refuses an empty one.
void resolve_program(const std::string& base_dir, std::vector<std::string>& argv,
                     std::string_view label, Problems& problems) {
  if (argv.empty()) return;
  if (argv[0].empty())
    problems.add(fmt::format("{}: the program name is empty", label));
  else if (argv[0].find('/') != std::string::npos)
    argv[0] = resolve(base_dir, argv[0]);
}

void resolve_check_programs(Config& config, Problems& problems) {
  resolve_program(config.base_dir, config.ready.exec, "ready.exec", problems);
  for (CheckCommand& smoke : config.smoke) {
    resolve_program(config.base_dir, smoke.command, fmt::format("smoke check '{}'", smoke.name),
                    problems);
  }
  if (config.pre_reload) {
    resolve_program(config.base_dir, config.pre_reload->command, "hooks.pre_reload", problems);
  }
  if (config.after_drained) {
    resolve_program(config.base_dir, config.after_drained->command, "hooks.after_drained",
                    problems);
  }
}

/// ready.socket names a socket, and http/tcp probes can reach the candidate
/// alone through the one they connect to.
void validate_probe_socket(const Config& config, const ReadyOrigins& origins, Problems& problems) {
  // Without every socket, the one named or the first stream one may be missing.
  if (config.sockets.empty() || !origins.sockets_complete) return;
  const SocketSpec* target = probed_socket(config);
  if (!target && !config.ready.socket.empty()) {
    std::vector<std::string_view> names;
    for (const SocketSpec& s : config.sockets) names.push_back(s.name);
    return problems.add(
        origins.socket.at,
        fmt::format("{}: no socket is named '{}' (the sockets are {})", origins.socket.name,
                    config.ready.socket, fmt::join(names, ", ")));
  }
  if (!config.ready.http && !config.ready.tcp) return;
  const Origin& probe = config.ready.http ? origins.http : origins.tcp;
  if (!target) {
    return problems.add(probe.at, fmt::format("{}: no tcp or unix socket is configured for the "
                                              "probe to connect to",
                                              probe.name));
  }
  if (Status s = check_probe_target(*target, config.listeners); !s) {
    problems.add(probe.at, fmt::format("{}: {}", probe.name, s.error().message));
  }
}

void validate_ready(const Config& config, const ReadyOrigins& origins, Problems& problems) {
  const ReadyChecks& ready = config.ready;
  if (!ready.notify && !ready.any_probe()) {
    problems.add(origins.notify.at,
                 fmt::format("{}: nothing would make an instance ready: notify = false and no "
                             "http, tcp or exec probe is set",
                             origins.notify.name));
  }
  if (origins.timeout.given && ready.timeout > config.ready_timeout) {
    problems.add(origins.timeout.at,
                 fmt::format("{} ({}) is longer than ready_timeout ({}): an attempt must fit in "
                             "the wait for readiness",
                             origins.timeout.name, format_duration(ready.timeout),
                             format_duration(config.ready_timeout)));
  }
  validate_probe_socket(config, origins, problems);
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
      config.sockets.push_back(std::move(*spec));
    }
  }
}

/// Whether a connection from 127.0.0.2 reaches a tcp listener on `socket`'s
/// address: a 127.x or wildcard IPv4 one, or a dual-stack IPv6 wildcard.
bool reachable_from_probe_source(const SocketSpec& socket) {
  SocketAddress address = socket.socket_address();
  bool wildcard =
      std::all_of(address.ip.begin(), address.ip.end(), [](uint8_t b) { return b == 0; });
  if (address.family == AF_INET) return address.ip[0] == 127 || wildcard;
  return address.family == AF_INET6 && wildcard && !socket.v6only;
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

Status check_probe_target(const SocketSpec& socket, ListenerMode mode) {
  if (socket.kind == SocketKind::kUdp) {
    return error(fmt::format("socket '{}' is udp; http and tcp probes need a tcp or unix socket",
                             socket.name));
  }
  const std::string shared = "would be answered by whichever generation accepts first";
  if (mode == ListenerMode::kShared) {
    return error(
        fmt::format("a probe of socket '{}' {}: listeners = \"shared\" gives every "
                    "generation one socket; use per-generation listeners or an exec probe",
                    socket.name, shared));
  }
  if (socket.reuseport) {
    return error(
        fmt::format("socket '{}' has reuseport = true, which lets the app add listeners "
                    "of its own, so every generation shares it and a probe {}; use an "
                    "exec probe",
                    socket.name, shared));
  }
  if (socket.kind == SocketKind::kUnix && socket.abstract) {
    return error(
        fmt::format("socket '{}' is an abstract unix socket, which cannot be renamed, so "
                    "every generation shares it and a probe {}; use a unix path socket "
                    "or an exec probe",
                    socket.name, shared));
  }
  if (socket.kind == SocketKind::kTcp && !reachable_from_probe_source(socket)) {
    return error(
        fmt::format("socket '{}' listens on {}{}: probes connect from 127.0.0.2, which "
                    "reaches only a 127.x, 0.0.0.0 or dual-stack :: listener",
                    socket.name, socket.address(),
                    socket.family == AF_INET6 && socket.v6only ? " (v6only)" : ""));
  }
  return {};
}

const SocketSpec* probed_socket(const Config& config) {
  for (const SocketSpec& s : config.sockets) {
    if (config.ready.socket.empty() ? s.kind != SocketKind::kUdp : s.name == config.ready.socket) {
      return &s;
    }
  }
  return nullptr;
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
  // Signals a config does not name (SIGSEGV, SIGABRT) still end apps.
  if (const char* abbrev = sigabbrev_np(sig)) return fmt::format("SIG{}", abbrev);
  return fmt::format("signal {}", sig);
}

}  // namespace baton

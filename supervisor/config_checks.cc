// Reading the checked-deploy settings: listeners, [ready] (with
// [ready.http]), [[smoke]] and [hooks] from a file, the same from `baton run`
// flags, and their validation, including which socket a probe may connect to.
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "config.h"
#include "config_read.h"

namespace baton {

using namespace config_read;

namespace {

/// The shortest probe interval and timeout, and command timeout: a probe
/// retried faster only loads the candidate, and a shorter limit fails
/// whatever it runs.
constexpr Millis kMinCheckTime{10};
/// The default timeouts of smoke checks and hooks (a hook may migrate a database).
constexpr Millis kSmokeTimeout{60'000};
constexpr Millis kHookTimeout{600'000};

constexpr std::string_view kReadyKeys[] = {"notify", "http",     "tcp",    "exec",
                                           "socket", "interval", "timeout"};
constexpr std::string_view kHttpKeys[] = {"path", "status", "body", "host"};
constexpr std::string_view kCommandKeys[] = {"name", "command", "timeout"};
constexpr std::string_view kHookKeys[] = {"pre_reload", "after_drained"};

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

/// Resolves a check's program as `command`'s is resolved; refuses an empty one.
void resolve_program(const std::string& base_dir, std::vector<std::string>& argv,
                     std::string_view label, Problems& problems) {
  if (argv.empty()) return;
  if (argv[0].empty())
    problems.add(fmt::format("{}: the program name is empty", label));
  else if (argv[0].find('/') != std::string::npos)
    argv[0] = resolve(base_dir, argv[0]);
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

namespace config_read {

/// The checked-deploy settings: listeners, [ready], [[smoke]] and [hooks].
void read_checks(const toml::table& top, Config& config, ReadyOrigins& origins,
                 Problems& problems) {
  read_listeners(top, config, problems);
  read_ready(top, config, origins, problems);
  read_smoke(top, config, problems);
  read_hooks(top, config, problems);
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

}  // namespace config_read

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

}  // namespace baton

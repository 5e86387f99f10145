// Tests config parsing and validation: TOML files (parse_config, load_config,
// read_control_path), flags (config_from_flags), the checked-deploy settings
// ([ready], [[smoke]], [hooks], listeners, check_probe_target), signal names
// and check_runnable. The limits checked before parsing are in toml_guard_test.cc.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.h"
#include "config_fixture.h"
#include "server_presets.h"

using namespace baton;
using namespace config_fixture;
using Env = std::vector<std::pair<std::string, std::string>>;
using Strings = std::vector<std::string>;

namespace {}  // namespace

TEST_CASE("a full config is read into every field") {
  Config c = parse_ok(R"(name = "web"
control = "run/web.sock"
command = ["./app", "--port", "8080"]
working_directory = "srv"
drain_signal = "SIGINT"
drain_timeout = "45s"
ready_timeout = "2m"
restart_delay = "250ms"
restart_delay_max = "1m30s"
[environment]
APP_ENV = "production"
LOG_LEVEL = "info"
[[socket]]
name = "http"
listen = "tcp://0.0.0.0:8080"
backlog = 512
reuseport = true
[[socket]]
name = "http6"
listen = "tcp://[::]:8080"
v6only = true
[[socket]]
name = "admin"
listen = "unix:admin.sock"
mode = "0660"
)");
  CHECK(c.file == kPath);
  CHECK(c.base_dir == "/etc/baton");
  CHECK(c.name == "web");
  CHECK(c.control_path == "/etc/baton/run/web.sock");
  CHECK(c.command == Strings{"/etc/baton/app", "--port", "8080"});
  CHECK(c.environment == Env{{"APP_ENV", "production"}, {"LOG_LEVEL", "info"}});
  CHECK(c.working_directory == "/etc/baton/srv");
  CHECK(c.drain_signal == SIGINT);
  CHECK(c.drain_timeout == Millis(45'000));
  CHECK(c.ready_timeout == Millis(120'000));
  CHECK(c.restart_delay == Millis(250));
  CHECK(c.restart_delay_max == Millis(90'000));
  REQUIRE(c.sockets.size() == 3);
  const SocketSpec &http = c.sockets[0], &http6 = c.sockets[1], &admin = c.sockets[2];
  CHECK((http.name == "http" && http.url == "tcp://0.0.0.0:8080" && http.kind == SocketKind::kTcp));
  CHECK(http.address() == "0.0.0.0:8080");
  CHECK((http.backlog == 512 && http.reuseport && !http.v6only && !http.mode));
  CHECK((http6.name == "http6" && http6.address() == "[::]:8080"));
  CHECK((http6.v6only && !http6.reuseport && !http6.backlog));
  CHECK((admin.name == "admin" && admin.kind == SocketKind::kUnix));
  CHECK(admin.path == "/etc/baton/admin.sock");
  CHECK(admin.mode == 0660);
}

TEST_CASE("optional keys take their defaults") {
  Config c = parse_ok(with_app(""));
  CHECK(c.name == "test");
  CHECK(c.control_path == default_control_path("test"));
  CHECK(c.command == Strings{"app"});
  CHECK(c.environment.empty());
  CHECK(c.working_directory == "");
  CHECK(c.drain_signal == SIGTERM);
  CHECK(c.drain_timeout == Millis(30'000));
  CHECK(c.ready_timeout == Millis(60'000));
  CHECK(c.restart_delay == Millis(100));
  CHECK(c.restart_delay_max == Millis(10'000));
  REQUIRE(c.sockets.size() == 1);
  CHECK(c.sockets[0].address() == "@a");
}

TEST_CASE("the environment keeps the order of the file") {
  Config c = parse_ok(with_app("", "[environment]\nZZ = \"1\"\nAA = \"2\"\n"));
  CHECK(c.environment == Env{{"ZZ", "1"}, {"AA", "2"}});
}

TEST_CASE("an unknown key is reported where it is, with a suggestion") {
  CHECK(config_error(with_app("drain_timout = \"5s\"\n")) ==
        "/etc/baton/test.toml:2:1: unknown key 'drain_timout' in the top level "
        "(did you mean 'drain_timeout'?)");
  CHECK(config_error(with_app("", "  backlg = 5\n")) ==
        "/etc/baton/test.toml:5:3: unknown key 'backlg' in [[socket]] (did you mean 'backlog'?)");
  CHECK(config_error(with_app("", "colour = \"red\"\n")) ==
        "/etc/baton/test.toml:5:1: unknown key 'colour' in [[socket]]");
}

TEST_CASE("durations must be strings with a valid unit") {
  CHECK(config_error(with_app("drain_timeout = 30\n")) ==
        "/etc/baton/test.toml:2:17: 'drain_timeout' must be a string with a unit, e.g. \"30s\"");
  CHECK(config_error(with_app("ready_timeout = \"30\"\n")) ==
        "/etc/baton/test.toml:2:17: 'ready_timeout': invalid duration \"30\": missing unit "
        "(write e.g. \"500ms\", \"30s\", \"2m\")");
}

TEST_CASE("a bad socket URL or name is reported at its value") {
  CHECK(config_error(with_app("", "[[socket]]\nname = \"b\"\nlisten = \"http://x:1\"\n")) ==
        "/etc/baton/test.toml:7:10: invalid socket URL \"http://x:1\": unknown scheme "
        "(expected tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH or unix:@NAME)");
  CHECK(config_error(with_app("", "[[socket]]\nname = \"b:c\"\nlisten = \"unix:@b\"\n")) ==
        "/etc/baton/test.toml:6:8: socket name \"b:c\" may contain only letters, digits, "
        "'_', '-' and '.'");
}

TEST_CASE("socket names and addresses must be unique, reported at the second one's key") {
  CHECK(config_error(with_app("", "[[socket]]\nname = \"a\"\nlisten = \"unix:@b\"\n")) ==
        "/etc/baton/test.toml:6:1: socket name 'a' is used twice (first at line 3)");
  CHECK(config_error(with_app("", "[[socket]]\nname = \"b\"\nlisten = \"unix:@a\"\n")) ==
        "/etc/baton/test.toml:7:1: address unix:@a is configured twice (first at line 4)");
  CHECK(config_error("command = [\"app\"]\n[[socket]]\nname = \"a\"\nlisten = \"unix:a.sock\"\n"
                     "[[socket]]\n  listen = \"unix:/etc/baton/a.sock\"\n  name = \"b\"\n") ==
        "/etc/baton/test.toml:6:3: address unix:/etc/baton/a.sock is configured twice (first at "
        "line 4)");
  CHECK(config_error(with_app("", "[[socket]]\nname = \"a\"\nlisten = \"unix:@a\"\n")) ==
        "/etc/baton/test.toml:6:1: socket name 'a' is used twice (first at line 3)\n"
        "/etc/baton/test.toml:7:1: address unix:@a is configured twice (first at line 4)");
  // Port 0 asks the kernel for a fresh port each time, so it may repeat.
  CHECK(parse_ok("command = [\"app\"]\n"
                 "[[socket]]\nname = \"a\"\nlisten = \"tcp://127.0.0.1:0\"\n"
                 "[[socket]]\nname = \"b\"\nlisten = \"tcp://127.0.0.1:0\"\n")
            .sockets.size() == 2);
}

TEST_CASE("the command must be present and an array of strings") {
  CHECK(config_error(kSocket) == std::string("/etc/baton/test.toml: ") + kMissingCommand);
  CHECK(config_error(std::string("command = \"app\"\n") + kSocket) ==
        "/etc/baton/test.toml:1:11: 'command' must be an array of strings");
  CHECK(config_error(std::string("command = [\"app\", 1]\n") + kSocket) ==
        "/etc/baton/test.toml:1:19: 'command' must be an array of strings");
}

TEST_CASE("an empty command array is refused and hides no other problem") {
  CHECK(config_error(std::string("command = []\n") + kSocket) ==
        "/etc/baton/test.toml:1:11: 'command' is empty: give the program and its arguments");
  CHECK(config_error("name = \"x\"\n") == std::string("/etc/baton/test.toml: ") + kMissingCommand +
                                              "\n/etc/baton/test.toml: " + kNoSockets);
}

TEST_CASE("a config without sockets is refused") {
  CHECK(config_error("command = [\"app\"]\n") ==
        std::string("/etc/baton/test.toml: ") + kNoSockets);
  CHECK(config_error("command = [\"app\"]\n[[socket]]\nname = \"a\"\n") ==
        std::string("/etc/baton/test.toml:2:1: [[socket]] needs 'name' and 'listen'\n") +
            "/etc/baton/test.toml: " + kNoSockets);
}

TEST_CASE("a TOML syntax error is reported with its line and column") {
  std::string message = config_error("command = [\"app\"]\nname = \n");
  CHECK(message.starts_with("/etc/baton/test.toml:2:8: "));
  CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("several problems are reported together, one per line") {
  CHECK(config_error(with_app("drain_signal = \"SIGFOO\"\nrestart_delay = \"1s\"\n"
                              "restart_delay_max = \"500ms\"\n",
                              "mode = \"rw\"\n")) ==
        "/etc/baton/test.toml:2:16: unknown signal \"SIGFOO\" (write e.g. \"SIGTERM\")\n"
        "/etc/baton/test.toml:8:8: invalid file mode \"rw\" (write octal, e.g. \"0660\")\n"
        "/etc/baton/test.toml: restart_delay_max is shorter than restart_delay");
}

TEST_CASE("read_control_path resolves `control` against the file's directory") {
  TempDir dir;
  std::string file = dir.write("svc.toml", "control = \"ctl/svc.sock\"\nbogus = 1\n");
  auto path = read_control_path(file);
  REQUIRE_MESSAGE(path.ok(), path.error().message);
  CHECK(*path == (dir.path / "ctl/svc.sock").string());
  std::string bare = dir.write("other.toml", "command = [\"app\"]\n");
  CHECK(read_control_path(bare).value() == default_control_path("other"));
}

TEST_CASE("load_config reads a file and reports a missing one by path") {
  TempDir dir;
  std::string file = dir.write("svc.toml", std::string("command = [\"./app\"]\n") + kSocket);
  auto config = load_config(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK(config->file == file);
  CHECK(config->base_dir == dir.path.string());
  CHECK(config->name == "svc");
  CHECK(config->command[0] == (dir.path / "app").string());

  std::string missing = (dir.path / "missing.toml").string();
  auto gone = load_config(missing);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().message == "cannot read config " + missing + ": No such file or directory");
  CHECK(gone.error().sys_errno == ENOENT);
  CHECK(read_control_path(missing).error().sys_errno == ENOENT);
}

TEST_CASE("config_from_flags builds a config from --listen flags and a command") {
  auto c = config_from_flags({"http=tcp://127.0.0.1:8080", "admin=unix:admin.sock"}, "/run/x.sock",
                             {"./app", "-v"});
  REQUIRE_MESSAGE(c.ok(), c.error().message);
  CHECK((c->file == "" && c->name == "baton"));
  CHECK(c->control_path == "/run/x.sock");
  CHECK(c->command == Strings{"./app", "-v"});
  REQUIRE(c->sockets.size() == 2);
  CHECK((c->sockets[0].name == "http" && c->sockets[0].address() == "127.0.0.1:8080"));
  CHECK((c->sockets[1].name == "admin" && c->sockets[1].path == "admin.sock"));
  CHECK(config_from_flags({"a=unix:@a"}, "", {"app"})->control_path ==
        default_control_path("baton"));
}

TEST_CASE("config_from_flags reports bad flags and an empty command") {
  const std::string no_sockets = std::string("\nbaton run: ") + kNoSockets;
  CHECK(config_from_flags({"web"}, "", {"app"}).error().message ==
        "baton run: --listen web: write NAME=URL, e.g. http=tcp://127.0.0.1:8080" + no_sockets);
  CHECK(config_from_flags({"web=http://x:1"}, "", {"app"}).error().message ==
        "baton run: --listen web=http://x:1: invalid socket URL \"http://x:1\": unknown scheme "
        "(expected tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH or unix:@NAME)" +
            no_sockets);
  CHECK(config_from_flags({"a=unix:@a"}, "", {}).error().message ==
        "baton run: the command is empty");
  CHECK(config_from_flags({"a=unix:@a", "b=unix:@a"}, "", {"app"}).error().message ==
        "baton run: address unix:@a is configured twice");
  CHECK(config_from_flags({"a=unix:@a", "a=unix:@b"}, "", {"app"}).error().message ==
        "baton run: socket name 'a' is used twice");
}

TEST_CASE("signals are read as SIGTERM, TERM or 15 and named as SIGTERM") {
  CHECK(parse_signal("SIGTERM").value() == SIGTERM);
  CHECK(parse_signal("TERM").value() == SIGTERM);
  CHECK(parse_signal("15").value() == 15);
  CHECK(parse_signal("SIGINT").value() == SIGINT);
  CHECK(parse_signal("SIGFOO").error().message ==
        "unknown signal \"SIGFOO\" (write e.g. \"SIGTERM\")");
  CHECK_FALSE(parse_signal("").ok());
  CHECK_FALSE(parse_signal("0").ok());
  CHECK_FALSE(parse_signal(std::to_string(NSIG)).ok());
  CHECK(signal_name(15) == "SIGTERM");
  CHECK(signal_name(SIGINT) == "SIGINT");
  CHECK(signal_name(40) == "signal 40");
}

TEST_CASE("restart delays below 10ms are refused, because a crash loop would spin") {
  CHECK(config_error(with_app("restart_delay = \"0ms\"\n")) ==
        "/etc/baton/test.toml:2:17: 'restart_delay' is 0ms; it must be at least 10ms (a shorter "
        "delay makes a crash loop spin)");
  CHECK(config_error(with_app("restart_delay = \"10ms\"\nrestart_delay_max = \"9ms\"\n")) ==
        "/etc/baton/test.toml:3:21: 'restart_delay_max' is 9ms; it must be at least 10ms (a "
        "shorter delay makes a crash loop spin)\n"
        "/etc/baton/test.toml: restart_delay_max is shorter than restart_delay");
  Config c = parse_ok(with_app("restart_delay = \"10ms\"\nrestart_delay_max = \"10ms\"\n"));
  CHECK(c.restart_delay == Millis(10));
  CHECK(c.restart_delay_max == Millis(10));
}

TEST_CASE("min_ready is a duration, off by default") {
  CHECK(parse_ok(with_app("")).min_ready == Millis(0));
  CHECK(parse_ok(with_app("min_ready = \"2s\"\n")).min_ready == Millis(2'000));
  CHECK(config_error(with_app("min_ready = 2\n")) ==
        "/etc/baton/test.toml:2:13: 'min_ready' must be a string with a unit, e.g. \"30s\"");
  CHECK(config_error(with_app("min_redy = \"2s\"\n")) ==
        "/etc/baton/test.toml:2:1: unknown key 'min_redy' in the top level (did you mean "
        "'min_ready'?)");
}

TEST_CASE("booleans and integers are not converted from other types") {
  CHECK(config_error(with_app("shim = 1\n")) ==
        "/etc/baton/test.toml:2:8: 'shim' must be true or false");
  CHECK(config_error(with_app("", "v6only = 0\n")) ==
        "/etc/baton/test.toml:5:10: 'v6only' must be true or false");
  CHECK(config_error(with_app("", "backlog = 1e300\n")) ==
        "/etc/baton/test.toml:5:11: 'backlog' must be 1 to 65535");
  CHECK(config_error(with_app("", "backlog = 512.0\n")) ==
        "/etc/baton/test.toml:5:11: 'backlog' must be 1 to 65535");
}

TEST_CASE("parse_config returns a value for every prefix and every byte change of a config") {
  const std::string full = R"(name = "web" # c
control = 'run/web.sock'
command = ["./app", """--x""", '''y''']
drain_timeout = "5s"
restart_delay = "100ms"
shim = false
[environment]
A = "1\t\u00e9"
[[socket]]
name = "http"
listen = "tcp://127.0.0.1:8080"
backlog = 16
v6only = true
mode = "0660"
)";
  int failed = 0;
  auto try_text = [&](const std::string& text) {
    auto config = parse_config(text, kPath);
    if (!config.ok() && !config.error().message.starts_with(kPath)) ++failed;
  };
  for (size_t n = 0; n <= full.size(); ++n) try_text(full.substr(0, n));
  for (size_t i = 0; i < full.size(); ++i) {
    for (char c : {'\0', '[', '{', '"', '\'', '\\', '.', '=', '\n', '#', '9', '\xff'}) {
      std::string changed = full;
      changed[i] = c;
      try_text(changed);
    }
  }
  CHECK(failed == 0);
}

TEST_CASE("input that breaks toml++'s own asserts is a parse error") {
  // Without NDEBUG these aborted in toml++ (parse_time, parse_value).
  CHECK(config_error("e = 1979-05-27Teee07:32:00Z\n") ==
        "/etc/baton/test.toml:1:16: Error while parsing time: expected 2-digit hour, saw 'e'");
  CHECK(config_error("a = [1,}\n") ==
        "/etc/baton/test.toml:1:8: Error while parsing value: could not determine value type");
}

TEST_CASE("check_runnable refuses what baton run cannot start, with every problem") {
  TempDir dir;
  Config c;
  c.file = "/etc/baton/app.toml";
  c.control_path = "/tmp/" + std::string(102, 'c');  // 107 bytes: the most that fits
  c.abstract_notify_socket = true;                   // no CONTROL.notify file
  c.command = {dir.write("app", "#!/bin/sh\nexit 0\n", 0755)};
  c.working_directory = dir.path.string();
  Status ok = check_runnable(c);
  CHECK_MESSAGE(ok.ok(), ok.error().message);

  // With the notify socket file beside it, the control path has 7 bytes less.
  Config path_notify = c;
  path_notify.abstract_notify_socket = false;
  CHECK(check_runnable(path_notify).error().message ==
        "/etc/baton/app.toml: notify socket path " + c.control_path +
            ".notify (the control socket's, with .notify) is 114 bytes; a unix socket path "
            "holds at most 107: give a shorter control path, or set notify_socket = "
            "\"abstract\"");
  path_notify.control_path = "/tmp/" + std::string(95, 'c');
  CHECK(check_runnable(path_notify).ok());

  Config bad = c;
  bad.control_path += "c";
  bad.working_directory = (dir.path / "missing").string();
  bad.command = {dir.write("data", "x", 0644)};
  CHECK(check_runnable(bad).error().message ==
        "/etc/baton/app.toml: control socket path " + bad.control_path +
            " is 108 bytes; a unix socket path holds at most 107\n"
            "/etc/baton/app.toml: working_directory " +
            bad.working_directory +
            ": No such file or directory\n"
            "/etc/baton/app.toml: command " +
            bad.command[0] + " is not an executable file (or not found in PATH)");

  Config no_interpreter = c;
  no_interpreter.command = {dir.write("script", "#!/nonexistent/python3 -u\n", 0755)};
  CHECK(check_runnable(no_interpreter).error().message ==
        "/etc/baton/app.toml: command " + no_interpreter.command[0] +
            ": its #! interpreter /nonexistent/python3 is not an executable file, so it cannot "
            "be executed");

  Config file_dir = c;
  file_dir.working_directory = c.command[0];
  CHECK(check_runnable(file_dir).error().message ==
        "/etc/baton/app.toml: working_directory " + c.command[0] + " is not a directory");
}

TEST_CASE("check_runnable checks the shim target, and names a flag config 'baton'") {
  TempDir dir;
  Config c;
  c.control_path = "/tmp/c.sock";
  c.command = {dir.write("app", "#!/bin/sh\nexit 0\n", 0755)};
  c.shim = true;
  CHECK(check_runnable(c).ok());  // judged by /bin/sh, its #! interpreter
  c.command = {dir.write("data", "x\n", 0755)};
  CHECK(check_runnable(c).error().message ==
        "baton: shim: " + c.command[0] + " is neither an ELF binary nor a script with a #! line");
  c.command = {"baton-no-such-program"};
  CHECK(check_runnable(c).error().message ==
        "baton: command baton-no-such-program is not an executable file (or not found in PATH)");
  c.command = {"sh"};  // found in PATH
  c.shim = false;
  CHECK(check_runnable(c).ok());
}

// Checked deploys: listeners, [ready], [[smoke]] and [hooks].

namespace {

/// `command = ["app"]`, `top`, socket "http" on tcp://127.0.0.1:8080 (lines
/// 2-4 if `top` is empty), `tail`.
std::string with_tcp(std::string_view top, std::string_view tail = "") {
  return "command = [\"app\"]\n" + std::string(top) +
         "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:8080\"\n" + std::string(tail);
}

/// A socket spec as a config would hold it.
SocketSpec spec(std::string_view url) {
  auto s = parse_socket_url(url);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  s->name = "http";
  return s.value();
}

std::string probe_error(const SocketSpec& socket,
                        ListenerMode mode = ListenerMode::kPerGeneration) {
  Status s = check_probe_target(socket, mode);
  REQUIRE_FALSE(s.ok());
  return s.error().message;
}

const std::string kReach =
    ": probes connect from 127.0.0.2, which reaches only a 127.x, 0.0.0.0 or dual-stack :: "
    "listener";

}  // namespace

TEST_CASE("[ready] is read into every field, with relative programs resolved") {
  Config c = parse_ok(R"(command = ["app"]
listeners = "per-generation"
[[socket]]
name = "http"
listen = "tcp://127.0.0.1:8080"
[[socket]]
name = "admin"
listen = "unix:admin.sock"
[ready]
http = "/health"
tcp = true
exec = ["./bin/ready-check", "--quick"]
notify = true
socket = "admin"
interval = "100ms"
timeout = "2s"
)");
  const ReadyChecks& r = c.ready;
  REQUIRE(r.http);
  CHECK(r.http->path == "/health");
  CHECK(r.http->host == "");
  CHECK(r.http->status == std::nullopt);
  CHECK(r.http->body == "");
  CHECK(r.tcp);
  CHECK(r.exec == Strings{"/etc/baton/bin/ready-check", "--quick"});
  CHECK(r.notify);
  CHECK(r.socket == "admin");
  CHECK(r.interval == Millis(100));
  CHECK(r.timeout == Millis(2'000));
  CHECK(c.listeners == ListenerMode::kPerGeneration);
  CHECK(probed_socket(c) == &c.sockets[1]);
}

TEST_CASE("[ready.http] is the long form of http, with path, status, body and host") {
  Config c = parse_ok(with_tcp("", R"([ready.http]
path = "/health"
status = 204
body = "ok"
host = "example.com"
)"));
  REQUIRE(c.ready.http);
  CHECK(c.ready.http->path == "/health");
  CHECK(c.ready.http->status == 204);
  CHECK(c.ready.http->body == "ok");
  CHECK(c.ready.http->host == "example.com");
  CHECK_FALSE(c.ready.notify);

  Config bare = parse_ok(with_tcp("", "[ready.http]\n"));
  REQUIRE(bare.ready.http);
  CHECK(bare.ready.http->path == "/");
  CHECK(bare.ready.http->status == std::nullopt);
  Config inline_table = parse_ok(with_tcp("", "[ready]\nhttp = { path = \"/x\", status = 100 }\n"));
  CHECK(inline_table.ready.http->path == "/x");
  CHECK(inline_table.ready.http->status == 100);
  CHECK(parse_ok(with_tcp("", "[ready.http]\nstatus = 599\n")).ready.http->status == 599);
}

TEST_CASE("the checked-deploy settings default to READY=1 alone and per-generation listeners") {
  Config c = parse_ok(with_app(""));
  CHECK(c.ready.notify);
  CHECK_FALSE(c.ready.http);
  CHECK_FALSE(c.ready.tcp);
  CHECK(c.ready.exec.empty());
  CHECK(c.ready.socket == "");
  CHECK(c.ready.interval == Millis(250));
  CHECK(c.ready.timeout == Millis(1'000));
  CHECK(c.smoke.empty());
  CHECK_FALSE(c.pre_reload);
  CHECK_FALSE(c.after_drained);
  CHECK(c.listeners == ListenerMode::kPerGeneration);
  CHECK(parse_ok(with_app("listeners = \"shared\"\n")).listeners == ListenerMode::kShared);
  // A [ready] table without probes keeps READY=1.
  CHECK(parse_ok(with_app("", "[ready]\ninterval = \"1s\"\n")).ready.notify);
}

TEST_CASE("notify defaults to off with a probe, on without, and can be set either way") {
  CHECK_FALSE(parse_ok(with_tcp("", "[ready]\nhttp = \"/\"\n")).ready.notify);
  CHECK_FALSE(parse_ok(with_tcp("", "[ready]\ntcp = true\n")).ready.notify);
  CHECK_FALSE(parse_ok(with_app("", "[ready]\nexec = [\"check\"]\n")).ready.notify);
  CHECK(parse_ok(with_tcp("", "[ready]\ntcp = false\n")).ready.notify);
  CHECK(parse_ok(with_tcp("", "[ready]\nhttp = \"/\"\nnotify = true\n")).ready.notify);
  CHECK(parse_ok(with_app("", "[ready]\nnotify = true\n")).ready.notify);
  Config exec_only = parse_ok(with_app("", "[ready]\nexec = [\"check\"]\nnotify = false\n"));
  CHECK_FALSE(exec_only.ready.notify);
  CHECK(exec_only.ready.exec == Strings{"check"});  // no '/': looked up in PATH

  CHECK(config_error(with_app("", "[ready]\nnotify = false\n")) ==
        "/etc/baton/test.toml:6:1: ready.notify: nothing would make an instance ready: notify = "
        "false and no http, tcp or exec probe is set");
  CHECK(config_error(with_tcp("", "[ready]\ntcp = false\nnotify = false\n")) ==
        "/etc/baton/test.toml:7:1: ready.notify: nothing would make an instance ready: notify = "
        "false and no http, tcp or exec probe is set");
}

TEST_CASE("[[smoke]] checks are read in order, with default names and timeouts") {
  Config c = parse_ok(with_app("", R"([[smoke]]
name = "home page"
command = ["./smoke/home.sh"]
timeout = "5s"
[[smoke]]
command = ["curl", "-fsS", "http://x/"]
)"));
  REQUIRE(c.smoke.size() == 2);
  CHECK(c.smoke[0].name == "home page");
  CHECK(c.smoke[0].command == Strings{"/etc/baton/smoke/home.sh"});
  CHECK(c.smoke[0].timeout == Millis(5'000));
  CHECK(c.smoke[1].name == "curl -fsS http://x/");
  CHECK(c.smoke[1].command == Strings{"curl", "-fsS", "http://x/"});
  CHECK(c.smoke[1].timeout == Millis(60'000));
  // The default name is the command as written, not as resolved.
  CHECK(parse_ok(with_app("", "[[smoke]]\ncommand = [\"./s\", \"a\"]\n")).smoke[0].name == "./s a");
}

TEST_CASE("[hooks] take a command array or a table, with a 10m default timeout") {
  Config c = parse_ok(with_app("", R"([hooks]
pre_reload = ["./bin/migrate", "up"]
after_drained = { command = ["./bin/migrate", "contract"], timeout = "1h", name = "contract" }
)"));
  REQUIRE(c.pre_reload);
  CHECK(c.pre_reload->name == "./bin/migrate up");
  CHECK(c.pre_reload->command == Strings{"/etc/baton/bin/migrate", "up"});
  CHECK(c.pre_reload->timeout == Millis(600'000));
  REQUIRE(c.after_drained);
  CHECK(c.after_drained->name == "contract");
  CHECK(c.after_drained->command == Strings{"/etc/baton/bin/migrate", "contract"});
  CHECK(c.after_drained->timeout == Millis(3'600'000));

  Config header = parse_ok(with_app("", "[hooks.pre_reload]\ncommand = [\"migrate\"]\n"));
  REQUIRE(header.pre_reload);
  CHECK(header.pre_reload->name == "migrate");
  CHECK(header.pre_reload->command == Strings{"migrate"});
  CHECK(header.pre_reload->timeout == Millis(600'000));
  CHECK_FALSE(header.after_drained);
}

TEST_CASE("unknown keys of the checked-deploy tables are reported with a suggestion") {
  CHECK(config_error(with_app("listners = \"shared\"\n")) ==
        "/etc/baton/test.toml:2:1: unknown key 'listners' in the top level (did you mean "
        "'listeners'?)");
  CHECK(config_error(with_tcp("", "[ready]\nhttp = \"/\"\nintreval = \"1s\"\n")) ==
        "/etc/baton/test.toml:7:1: unknown key 'intreval' in [ready] (did you mean 'interval'?)");
  CHECK(config_error(with_tcp("", "[ready.http]\nstatsu = 200\n")) ==
        "/etc/baton/test.toml:6:1: unknown key 'statsu' in [ready.http] (did you mean 'status'?)");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"x\"]\ntimout = \"1s\"\n")) ==
        "/etc/baton/test.toml:7:1: unknown key 'timout' in [[smoke]] (did you mean 'timeout'?)");
  CHECK(config_error(with_app("", "[hooks]\npre_relaod = [\"x\"]\n")) ==
        "/etc/baton/test.toml:6:1: unknown key 'pre_relaod' in [hooks] (did you mean "
        "'pre_reload'?)");
  CHECK(config_error(with_app("", "[hooks]\npre_reload = { command = [\"x\"], nme = \"n\" }\n")) ==
        "/etc/baton/test.toml:6:33: unknown key 'nme' in hooks.pre_reload (did you mean 'name'?)");
}

TEST_CASE("checked-deploy commands must be non-empty arrays of strings") {
  CHECK(config_error(with_app("", "[ready]\nexec = []\n")) ==
        "/etc/baton/test.toml:6:8: 'ready.exec' is empty: give the program and its arguments");
  CHECK(config_error(with_app("", "[ready]\nexec = \"./check\"\n")) ==
        "/etc/baton/test.toml:6:8: 'ready.exec' must be an array of strings");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = []\n")) ==
        "/etc/baton/test.toml:6:11: 'smoke.command' is empty: give the program and its arguments");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"x\", 2]\n")) ==
        "/etc/baton/test.toml:6:17: 'smoke.command' must be an array of strings");
  CHECK(config_error(with_app("", "[[smoke]]\nname = \"x\"\n")) ==
        "/etc/baton/test.toml:5:1: [[smoke]] needs 'command' (the program and its arguments)");
  CHECK(config_error(with_app("", "[smoke]\ncommand = [\"x\"]\n")) ==
        "/etc/baton/test.toml:5:1: write smoke checks as [[smoke]] tables");
  CHECK(config_error(with_app("", "[hooks]\npre_reload = []\n")) ==
        "/etc/baton/test.toml:6:14: 'hooks.pre_reload' is empty: give the program and its "
        "arguments");
  CHECK(config_error(with_app("", "[hooks]\nafter_drained = \"./migrate\"\n")) ==
        "/etc/baton/test.toml:6:17: 'hooks.after_drained' must be a command array or a table "
        "with 'command'");
  CHECK(config_error(with_app("", "[hooks]\nafter_drained = { command = [] }\n")) ==
        "/etc/baton/test.toml:6:29: 'hooks.after_drained.command' is empty: give the program and "
        "its arguments");
  CHECK(config_error(with_app("", "[hooks.pre_reload]\ntimeout = \"1m\"\n")) ==
        "/etc/baton/test.toml:5:1: hooks.pre_reload needs 'command' (the program and its "
        "arguments)");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"\"]\n")) ==
        "/etc/baton/test.toml: smoke check '': the program name is empty");
}

TEST_CASE("checked-deploy values of the wrong type are reported at the value") {
  CHECK(config_error(with_app("ready = 1\n")) ==
        "/etc/baton/test.toml:2:9: 'ready' must be a table ([ready])");
  CHECK(config_error(with_app("hooks = []\n")) ==
        "/etc/baton/test.toml:2:9: 'hooks' must be a table ([hooks])");
  CHECK(config_error(with_app("listeners = \"both\"\n")) ==
        "/etc/baton/test.toml:2:13: 'listeners' must be \"per-generation\" or \"shared\"");
  CHECK(config_error(with_tcp("", "[ready]\ntcp = 1\n")) ==
        "/etc/baton/test.toml:6:7: 'ready.tcp' must be true or false");
  CHECK(config_error(with_tcp("", "[ready]\nhttp = 200\n")) ==
        "/etc/baton/test.toml:6:8: 'ready.http' must be a path such as \"/health\" or a "
        "[ready.http] table");
  CHECK(config_error(with_tcp("", "[ready]\nhttp = \"/\"\nsocket = 1\n")) ==
        "/etc/baton/test.toml:7:10: 'ready.socket' must be a string");
  CHECK(config_error(with_tcp("", "[ready]\nhttp = \"/\"\nsocket = \"\"\n")) ==
        "/etc/baton/test.toml:7:10: 'ready.socket' is empty: name a [[socket]], or leave it out "
        "for the first tcp or unix socket");
  CHECK(config_error(with_tcp("", "[ready.http]\nbody = 1\n")) ==
        "/etc/baton/test.toml:6:8: 'ready.http.body' must be a string");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"x\"]\ntimeout = 5\n")) ==
        "/etc/baton/test.toml:7:11: 'smoke.timeout' must be a string with a unit, e.g. \"30s\"");
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"x\"]\nname = 5\n")) ==
        "/etc/baton/test.toml:7:8: 'smoke.name' must be a string");
}

TEST_CASE("an http probe's path must start with '/', and its status be 100 to 599") {
  CHECK(config_error(with_tcp("", "[ready]\nhttp = \"health\"\n")) ==
        "/etc/baton/test.toml:6:8: ready.http: path \"health\" must start with '/'");
  CHECK(config_error(with_tcp("", "[ready.http]\npath = \"health\"\n")) ==
        "/etc/baton/test.toml:6:8: ready.http: path \"health\" must start with '/'");
  CHECK(config_error(with_tcp("", "[ready]\nhttp = \"/a b\"\n")) ==
        "/etc/baton/test.toml:6:8: ready.http: the path must not contain spaces or control "
        "characters (write them %-encoded)");
  const std::string status = "'ready.http.status' must be an HTTP status from 100 to 599";
  CHECK(config_error(with_tcp("", "[ready.http]\nstatus = 99\n")) ==
        "/etc/baton/test.toml:6:10: " + status);
  CHECK(config_error(with_tcp("", "[ready.http]\nstatus = 600\n")) ==
        "/etc/baton/test.toml:6:10: " + status);
  CHECK(config_error(with_tcp("", "[ready.http]\nstatus = 200.0\n")) ==
        "/etc/baton/test.toml:6:10: " + status);
  CHECK(config_error(with_tcp("", "[ready.http]\nstatus = \"200\"\n")) ==
        "/etc/baton/test.toml:6:10: " + status);
  CHECK(config_error(with_tcp("", "[ready.http]\nhost = \"a\\r\\nX: y\"\n")) ==
        "/etc/baton/test.toml:6:8: 'ready.http.host' must not contain spaces or control "
        "characters");
}

TEST_CASE("probe interval and timeout are at least 10ms, the timeout at most ready_timeout") {
  CHECK(config_error(with_app("", "[ready]\ninterval = \"9ms\"\n")) ==
        "/etc/baton/test.toml:6:12: 'ready.interval' is 9ms; it must be at least 10ms");
  CHECK(config_error(with_app("", "[ready]\ntimeout = \"0s\"\n")) ==
        "/etc/baton/test.toml:6:11: 'ready.timeout' is 0ms; it must be at least 10ms");
  CHECK(config_error(with_app("", "[ready]\ntimeout = \"1\"\n")) ==
        "/etc/baton/test.toml:6:11: 'ready.timeout': invalid duration \"1\": missing unit (write "
        "e.g. \"500ms\", \"30s\", \"2m\")");
  CHECK(config_error(with_app("ready_timeout = \"30s\"\n", "[ready]\ntimeout = \"31s\"\n")) ==
        "/etc/baton/test.toml:7:1: ready.timeout (31s) is longer than ready_timeout (30s): an "
        "attempt must fit in the wait for readiness");
  Config c = parse_ok(
      with_app("ready_timeout = \"30s\"\n", "[ready]\ninterval = \"10ms\"\ntimeout = \"30s\"\n"));
  CHECK(c.ready.interval == Millis(10));
  CHECK(c.ready.timeout == Millis(30'000));
  // The default timeout (1s) is not held against a shorter ready_timeout.
  CHECK(parse_ok(with_app("ready_timeout = \"500ms\"\n")).ready.timeout == Millis(1'000));
  CHECK(config_error(with_app("", "[[smoke]]\ncommand = [\"x\"]\ntimeout = \"5ms\"\n")) ==
        "/etc/baton/test.toml:7:11: 'smoke.timeout' is 5ms; it must be at least 10ms");
  CHECK(config_error(with_app("",
                              "[hooks]\npre_reload = { command = [\"x\"], timeout = \"1ms\" "
                              "}\n")) ==
        "/etc/baton/test.toml:6:43: 'hooks.pre_reload.timeout' is 1ms; it must be at least 10ms");
}

TEST_CASE("http and tcp probes connect to the named socket, else the first stream one") {
  const char* sockets = R"([[socket]]
name = "dns"
listen = "udp://127.0.0.1:53"
[[socket]]
name = "web"
listen = "tcp://127.0.0.1:80"
[[socket]]
name = "admin"
listen = "unix:/run/admin.sock"
)";
  Config first = parse_ok(std::string("command = [\"app\"]\n") + sockets + "[ready]\ntcp = true\n");
  CHECK(first.ready.socket == "");
  CHECK(probed_socket(first) == &first.sockets[1]);
  Config named = parse_ok(std::string("command = [\"app\"]\n") + sockets +
                          "[ready]\nhttp = \"/\"\nsocket = \"admin\"\n");
  CHECK(probed_socket(named) == &named.sockets[2]);
  CHECK(config_error(std::string("command = [\"app\"]\n") + sockets +
                     "[ready]\nhttp = \"/\"\nsocket = \"dns\"\n") ==
        "/etc/baton/test.toml:12:1: ready.http: socket 'dns' is udp; http and tcp probes need a "
        "tcp or unix socket");
  CHECK(config_error(std::string("command = [\"app\"]\n") + sockets +
                     "[ready]\nexec = [\"x\"]\nsocket = \"dsn\"\n") ==
        "/etc/baton/test.toml:13:1: ready.socket: no socket is named 'dsn' (the sockets are dns, "
        "web, admin)");
  CHECK(config_error("command = [\"app\"]\n[[socket]]\nname = \"dns\"\nlisten = "
                     "\"udp://127.0.0.1:53\"\n[ready]\ntcp = true\n") ==
        "/etc/baton/test.toml:6:1: ready.tcp: no tcp or unix socket is configured for the probe "
        "to connect to");
  // A udp socket is fine when nothing probes it.
  CHECK(parse_ok("command = [\"app\"]\n[[socket]]\nname = \"dns\"\nlisten = "
                 "\"udp://127.0.0.1:53\"\n")
            .ready.notify);
  // A socket that was refused hides the probe's complaints about sockets.
  CHECK(config_error(with_tcp("",
                              "[[socket]]\nname = \"b\"\nlisten = \"x\"\n"
                              "[ready]\ntcp = true\nsocket = \"b\"\n")) ==
        "/etc/baton/test.toml:7:10: invalid socket URL \"x\": unknown scheme (expected "
        "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH or unix:@NAME)");
}

TEST_CASE(
    "a probe is refused where it could be answered by a generation other than the "
    "candidate") {
  CHECK(config_error(with_tcp("listeners = \"shared\"\n", "[ready]\nhttp = \"/\"\n")) ==
        "/etc/baton/test.toml:7:1: ready.http: a probe of socket 'http' would be answered by "
        "whichever generation accepts first: listeners = \"shared\" gives every generation one "
        "socket; use per-generation listeners or an exec probe");
  CHECK(parse_ok(with_tcp("listeners = \"shared\"\n", "[ready]\nexec = [\"x\"]\n")).listeners ==
        ListenerMode::kShared);
  CHECK(config_error(with_tcp("", "reuseport = true\n[ready]\ntcp = true\n")) ==
        "/etc/baton/test.toml:7:1: ready.tcp: socket 'http' has reuseport = true, which lets the "
        "app add listeners of its own, so every generation shares it and a probe would be "
        "answered by whichever generation accepts first; use an exec probe");
  CHECK(config_error(with_app("", "[ready]\ntcp = true\n")) ==
        "/etc/baton/test.toml:6:1: ready.tcp: socket 'a' is an abstract unix socket, which cannot "
        "be renamed, so every generation shares it and a probe would be answered by whichever "
        "generation accepts first; use a unix path socket or an exec probe");
  CHECK(config_error("command = [\"app\"]\n[[socket]]\nname = \"v6\"\nlisten = "
                     "\"tcp://[::1]:80\"\n[ready]\nhttp = \"/\"\n") ==
        "/etc/baton/test.toml:6:1: ready.http: socket 'v6' listens on [::1]:80" + kReach);
}

TEST_CASE("check_probe_target allows only what baton can steer from 127.0.0.2") {
  for (const char* url : {"tcp://127.0.0.1:8080", "tcp://127.1.2.3:1", "tcp://0.0.0.0:80",
                          "tcp://[::]:80", "unix:/run/app.sock"}) {
    CAPTURE(url);
    Status s = check_probe_target(spec(url), ListenerMode::kPerGeneration);
    CHECK_MESSAGE(s.ok(), s.error().message);
  }
  CHECK(probe_error(spec("tcp://[::1]:8080")) == "socket 'http' listens on [::1]:8080" + kReach);
  CHECK(probe_error(spec("tcp://10.0.0.1:80")) == "socket 'http' listens on 10.0.0.1:80" + kReach);
  CHECK(probe_error(spec("tcp://[::ffff:127.0.0.1]:80")) ==
        "socket 'http' listens on [::ffff:127.0.0.1]:80" + kReach);
  SocketSpec v6only = spec("tcp://[::]:80");
  v6only.v6only = true;
  CHECK(probe_error(v6only) == "socket 'http' listens on [::]:80 (v6only)" + kReach);
  CHECK(probe_error(spec("udp://127.0.0.1:53")) ==
        "socket 'http' is udp; http and tcp probes need a tcp or unix socket");
  CHECK(probe_error(spec("unix:@app")).starts_with("socket 'http' is an abstract unix socket"));
  SocketSpec reuseport = spec("tcp://127.0.0.1:80");
  reuseport.reuseport = true;
  CHECK(probe_error(reuseport).starts_with("socket 'http' has reuseport = true"));
  CHECK(probe_error(spec("tcp://127.0.0.1:80"), ListenerMode::kShared)
            .starts_with("a probe of socket 'http' would be answered by whichever generation "
                         "accepts first: listeners = \"shared\""));
  // udp is named before the listener mode: no mode makes it probeable.
  CHECK(probe_error(spec("udp://127.0.0.1:53"), ListenerMode::kShared)
            .starts_with("socket 'http' is udp"));
}

TEST_CASE("config_from_flags reads the check flags") {
  RunFlags f;
  f.listens = {"dns=udp://127.0.0.1:53", "http=tcp://127.0.0.1:8080", "admin=unix:/run/a.sock"};
  f.command = {"./app"};
  f.checks.ready_http = "/health";
  f.checks.ready_tcp = true;
  f.checks.ready_exec = "./ready-check --quick";
  f.checks.ready_notify = true;
  f.checks.ready_socket = "admin";
  f.checks.ready_interval = "100ms";
  f.checks.probe_timeout = "2s";
  f.checks.smoke = {"./smoke/home.sh", "curl -fsS $BATON_CANDIDATE_URL/"};
  f.checks.pre_reload = "./migrate up";
  f.checks.after_drained = "./migrate contract";
  f.checks.listeners = "per-generation";
  auto c = config_from_flags(f);
  REQUIRE_MESSAGE(c.ok(), c.error().message);
  const ReadyChecks& r = c->ready;
  REQUIRE(r.http);
  CHECK(r.http->path == "/health");
  CHECK((r.http->host == "" && r.http->status == std::nullopt && r.http->body == ""));
  CHECK(r.tcp);
  CHECK(r.exec == Strings{"/bin/sh", "-c", "./ready-check --quick"});
  CHECK(r.notify);
  CHECK(r.socket == "admin");
  CHECK(probed_socket(*c) == &c->sockets[2]);
  CHECK(r.interval == Millis(100));
  CHECK(r.timeout == Millis(2'000));
  REQUIRE(c->smoke.size() == 2);
  CHECK(c->smoke[0].name == "./smoke/home.sh");
  CHECK(c->smoke[0].command == Strings{"/bin/sh", "-c", "./smoke/home.sh"});
  CHECK(c->smoke[0].timeout == Millis(60'000));
  CHECK(c->smoke[1].command == Strings{"/bin/sh", "-c", "curl -fsS $BATON_CANDIDATE_URL/"});
  REQUIRE(c->pre_reload);
  CHECK(c->pre_reload->name == "./migrate up");
  CHECK(c->pre_reload->command == Strings{"/bin/sh", "-c", "./migrate up"});
  CHECK(c->pre_reload->timeout == Millis(600'000));
  REQUIRE(c->after_drained);
  CHECK(c->after_drained->command == Strings{"/bin/sh", "-c", "./migrate contract"});
  CHECK(c->after_drained->timeout == Millis(600'000));
  CHECK(c->listeners == ListenerMode::kPerGeneration);
  CHECK(c->command == Strings{"./app"});
}

TEST_CASE("config_from_flags without check flags waits for READY=1 alone") {
  RunFlags f;
  f.listens = {"http=tcp://127.0.0.1:8080"};
  f.command = {"app"};
  auto c = config_from_flags(f);
  REQUIRE_MESSAGE(c.ok(), c.error().message);
  CHECK(c->ready.notify);
  CHECK_FALSE(c->ready.any_probe());
  CHECK((c->ready.interval == Millis(250) && c->ready.timeout == Millis(1'000)));
  CHECK((c->smoke.empty() && !c->pre_reload && !c->after_drained));
  CHECK(c->listeners == ListenerMode::kPerGeneration);

  f.checks.ready_tcp = true;
  CHECK_FALSE(config_from_flags(f)->ready.notify);
  f.checks.ready_notify = true;
  CHECK(config_from_flags(f)->ready.notify);
  f.checks = {};
  f.checks.ready_exec = "true";
  CHECK_FALSE(config_from_flags(f)->ready.notify);
  f.checks.listeners = "shared";
  CHECK(config_from_flags(f)->listeners == ListenerMode::kShared);
}

TEST_CASE("config_from_flags refuses bad check flags, naming the flag") {
  auto flag_error = [](void (*set)(RunFlags&),
                       std::vector<std::string> listens = {"http=tcp://127.0.0.1:8080"}) {
    RunFlags f;
    f.listens = std::move(listens);
    f.command = {"app"};
    set(f);
    auto c = config_from_flags(f);
    REQUIRE_FALSE(c.ok());
    return c.error().message;
  };
  CHECK(flag_error([](RunFlags& f) { f.checks.ready_http = "health"; }) ==
        "baton run: --ready-http: path \"health\" must start with '/'");
  CHECK(flag_error([](RunFlags& f) { f.checks.ready_interval = "5ms"; }) ==
        "baton run: --ready-interval 5ms: it must be at least 10ms");
  CHECK(flag_error([](RunFlags& f) { f.checks.probe_timeout = "2"; }) ==
        "baton run: --probe-timeout 2: invalid duration \"2\": missing unit (write e.g. "
        "\"500ms\", \"30s\", \"2m\")");
  CHECK(
      flag_error([](RunFlags& f) { f.checks.probe_timeout = "61s"; }) ==
      "baton run: --probe-timeout (1m1s) is longer than ready_timeout (1m0s): an attempt must fit "
      "in the wait for readiness");
  CHECK(flag_error([](RunFlags& f) { f.checks.listeners = "both"; }) ==
        "baton run: --listeners both: write per-generation or shared");
  CHECK(flag_error([](RunFlags& f) {
          f.checks.ready_tcp = true;
          f.checks.ready_socket = "htp";
        }) == "baton run: --ready-socket: no socket is named 'htp' (the sockets are http)");
  CHECK(flag_error(
            [](RunFlags& f) {
              f.checks.ready_tcp = true;
              f.checks.ready_socket = "dns";
            },
            {"http=tcp://127.0.0.1:8080", "dns=udp://127.0.0.1:53"}) ==
        "baton run: --ready-tcp: socket 'dns' is udp; http and tcp probes need a tcp or unix "
        "socket");
  CHECK(flag_error([](RunFlags& f) { f.checks.ready_tcp = true; }, {"dns=udp://127.0.0.1:53"}) ==
        "baton run: --ready-tcp: no tcp or unix socket is configured for the probe to connect to");
  CHECK(flag_error([](RunFlags& f) {
          f.checks.ready_http = "/";
          f.checks.listeners = "shared";
        })
            .starts_with("baton run: --ready-http: a probe of socket 'http' would be answered by "
                         "whichever generation accepts first"));
  CHECK(flag_error([](RunFlags& f) { f.checks.ready_http = "/"; }, {"v6=tcp://[::1]:80"}) ==
        "baton run: --ready-http: socket 'v6' listens on [::1]:80" + kReach);
}

TEST_CASE("check_runnable checks the programs of probes, smoke checks and hooks given by path") {
  TempDir dir;
  Config c;
  c.control_path = "/tmp/c.sock";
  c.command = {"sh"};
  const std::string tool = dir.write("tool", "#!/bin/sh\nexit 0\n", 0755);
  c.ready.exec = {tool, "--quick"};
  c.smoke = {CheckCommand{"home", {tool}, Millis(1'000)},
             CheckCommand{"bare", {"true"}, Millis(1)}};
  c.pre_reload = CheckCommand{"up", {tool, "up"}, Millis(1'000)};
  c.after_drained = CheckCommand{"contract", {"no-such-program-in-path"}, Millis(1'000)};
  Status ok = check_runnable(c);
  CHECK_MESSAGE(ok.ok(), ok.error().message);  // names without '/' are left to PATH at run time

  const std::string data = dir.write("data", "x", 0644);
  const std::string missing = (dir.path / "missing").string();
  c.ready.exec = {data};
  c.smoke[0].command = {missing};
  c.pre_reload->command = {data, "up"};
  c.after_drained->command = {missing};
  CHECK(check_runnable(c).error().message ==
        "baton: ready.exec " + data + " is not an executable file\n" +
            "baton: smoke check 'home': " + missing + " is not an executable file\n" +
            "baton: hooks.pre_reload " + data + " is not an executable file\n" +
            "baton: hooks.after_drained " + missing + " is not an executable file");
}

TEST_CASE("baton check resolves check programs against the config's directory") {
  TempDir dir;
  dir.write("app", "#!/bin/sh\nexit 0\n", 0755);
  std::filesystem::create_directory(dir.path / "bin");
  dir.write("bin/ready", "#!/bin/sh\nexit 0\n", 0755);
  std::string file = dir.write("svc.toml", std::string("command = [\"./app\"]\n") + kSocket +
                                               "[ready]\nexec = [\"./bin/ready\"]\n"
                                               "[[smoke]]\ncommand = [\"./bin/missing\"]\n");
  auto config = load_config(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK(config->ready.exec == Strings{(dir.path / "bin/ready").string()});
  CHECK(check_runnable(*config).error().message ==
        file + ": smoke check './bin/missing': " + (dir.path / "bin/missing").string() +
            " is not an executable file");
}

TEST_CASE("server = NAME sets the drain signal of that server's preset; drain_signal wins") {
  Config nginx = parse_ok(with_app("server = \"nginx\"\n"));
  CHECK(nginx.server == "nginx");
  CHECK(nginx.drain_signal == SIGQUIT);
  CHECK(parse_ok(with_app("server = \"nginx\"\ndrain_signal = \"SIGTERM\"\n")).drain_signal ==
        SIGTERM);
  CHECK(parse_ok(with_app("drain_signal = \"SIGTERM\"\nserver = \"nginx\"\n")).drain_signal ==
        SIGTERM);
  std::string names;
  for (const ServerPreset& p : server_presets())
    names += (names.empty() ? "" : ", ") + std::string(p.name);
  CHECK(config_error(with_app("server = \"nginks\"\n")) ==
        "/etc/baton/test.toml:2:10: unknown server 'nginks'; baton has presets for: " + names);
}

TEST_CASE("nonblocking: off by default, as systemd's NonBlocking=; on by default for nginx") {
  auto nonblocking = [](std::string_view top, std::string_view tail = "") {
    Config c = parse_ok(with_tcp(top, tail));
    REQUIRE(c.sockets.size() == 1);
    return c.sockets[0].nonblocking;
  };
  CHECK_FALSE(nonblocking(""));
  CHECK(nonblocking("", "nonblocking = true\n"));
  CHECK(nonblocking("server = \"nginx\"\n"));
  CHECK_FALSE(nonblocking("server = \"nginx\"\n", "nonblocking = false\n"));
  CHECK_FALSE(nonblocking("server = \"uwsgi\"\n"));
  CHECK(config_error(with_tcp("", "nonblocking = 1\n")) ==
        "/etc/baton/test.toml:5:15: 'nonblocking' must be true or false");
}

TEST_CASE("notify_socket: a path beside the control socket by default, or abstract") {
  Config c = parse_ok(with_app("control = \"/run/baton/web.sock\"\n"));
  CHECK_FALSE(c.abstract_notify_socket);
  CHECK(notify_socket_path(c.control_path) == "/run/baton/web.sock.notify");
  CHECK(parse_ok(with_app("notify_socket = \"abstract\"\n")).abstract_notify_socket);
  CHECK_FALSE(parse_ok(with_app("notify_socket = \"path\"\n")).abstract_notify_socket);
  CHECK(config_error(with_app("notify_socket = \"/tmp/n\"\n")) ==
        "/etc/baton/test.toml:2:17: 'notify_socket' must be \"path\" (a socket file beside the "
        "control socket) or \"abstract\"");
}

TEST_CASE("notify_access: main by default; exec and all; anything else is refused") {
  CHECK(parse_ok(with_app("")).notify_access == Config::NotifyAccess::kMain);
  CHECK(parse_ok(with_app("notify_access = \"exec\"\n")).notify_access ==
        Config::NotifyAccess::kExec);
  CHECK(parse_ok(with_app("notify_access = \"all\"\n")).notify_access ==
        Config::NotifyAccess::kAll);
  CHECK(config_error(with_app("notify_access = \"none\"\n")) ==
        "/etc/baton/test.toml:2:17: 'notify_access' must be \"main\" (the main pid's messages), "
        "\"exec\" (also those of the processes it started) or \"all\" (any process of its group)");
}

TEST_CASE("[metrics]: a .prom file beside the config, every 15s by default; refusals") {
  CHECK_FALSE(parse_ok(with_app("")).metrics_file);
  Config c = parse_ok(with_app("", "[metrics]\nfile = \"run/baton.prom\"\n"));
  REQUIRE(c.metrics_file);
  CHECK(c.metrics_file->path == "/etc/baton/run/baton.prom");
  CHECK(c.metrics_file->interval == Millis(15'000));
  c = parse_ok(with_app("", "[metrics]\nfile = \"/var/lib/x/b.prom\"\ninterval = \"1s\"\n"));
  CHECK(c.metrics_file->path == "/var/lib/x/b.prom");
  CHECK(c.metrics_file->interval == Millis(1'000));
  CHECK(config_error(with_app("", "[metrics]\ninterval = \"5s\"\n")) ==
        "/etc/baton/test.toml:5:1: [metrics] needs a file, e.g. file = "
        "\"/var/lib/prometheus/node-exporter/baton.prom\"");
  CHECK(config_error(with_app("", "[metrics]\nfile = \"baton.txt\"\n")) ==
        "/etc/baton/test.toml:6:8: metrics.file \"baton.txt\" must be named NAME.prom (the "
        "textfile collector reads only *.prom files)");
  CHECK(config_error(with_app("", "[metrics]\nfile = \"run/.prom\"\n")) ==
        "/etc/baton/test.toml:6:8: metrics.file \"run/.prom\" must be named NAME.prom (the "
        "textfile collector reads only *.prom files)");
  CHECK(config_error(with_app("", "[metrics]\nfile = \"b.prom\"\ninterval = \"500ms\"\n")) ==
        "/etc/baton/test.toml:7:12: 'metrics.interval' must be at least 1s");
  CHECK(config_error(with_app("metrics = \"b.prom\"\n")) ==
        "/etc/baton/test.toml:2:11: 'metrics' must be a table ([metrics])");
}

TEST_CASE("instances, strategy and max_surge: one instance all at once by default") {
  Config d = parse_ok(with_app(""));
  CHECK(d.instances == 1);
  CHECK(d.strategy == Config::Strategy::kAllAtOnce);
  CHECK(d.max_surge == 1);
  Config c = parse_ok(with_app("instances = 4\nstrategy = \"rolling\"\nmax_surge = 2\n"));
  CHECK(c.instances == 4);
  CHECK(c.strategy == Config::Strategy::kRolling);
  CHECK(c.max_surge == 2);
  CHECK(config_error(with_app("instances = 2\nstrategy = \"rolling\"\nmax_surge = 3\n")) ==
        "/etc/baton/test.toml:4:13: 'max_surge' (3) is more than 'instances' (2)");
  CHECK(parse_ok(with_app("instances = 64\nstrategy = \"all-at-once\"\n")).instances == 64);
  CHECK(config_error(with_app("instances = 0\n")) ==
        "/etc/baton/test.toml:2:13: 'instances' must be an integer from 1 to 64");
  CHECK(config_error(with_app("instances = 65\n")) ==
        "/etc/baton/test.toml:2:13: 'instances' must be an integer from 1 to 64");
  CHECK(config_error(with_app("instances = 2.0\n")) ==
        "/etc/baton/test.toml:2:13: 'instances' must be an integer from 1 to 64");
  CHECK(config_error(with_app("strategy = \"blue-green\"\n")) ==
        "/etc/baton/test.toml:2:12: 'strategy' must be \"all-at-once\" (every new instance ready, "
        "then every old one drains) or \"rolling\" (max_surge at a time)");
  CHECK(config_error(with_app("instances = 2\nmax_surge = 1\n")) ==
        "/etc/baton/test.toml:3:13: 'max_surge' applies to strategy = \"rolling\" only");
}

TEST_CASE("canary shares are percentages above 0 and below 100, in parts of 10,000") {
  CHECK(parse_share("10%").value() == 1'000u);
  CHECK(parse_share("2.5%").value() == 250u);
  CHECK(parse_share("0.01%").value() == 1u);
  CHECK(parse_share("99.99%").value() == 9'999u);
  for (const char* bad : {"0%", "100%", "10", "%", "1.%", ".5%", "1.234%", "-5%", "5 %", "105%"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_share(bad).ok());
  }
  CHECK(format_share(1'000) == "10%");
  CHECK(format_share(250) == "2.5%");
  CHECK(format_share(1) == "0.01%");
}

TEST_CASE("[canary]: a share, and a hold after which the canary is promoted by itself") {
  CHECK_FALSE(parse_ok(with_app("")).canary);
  Config c = parse_ok(with_app("[canary]\nshare = \"10%\"\nhold = \"5m\"\n"));
  REQUIRE(c.canary);
  CHECK(c.canary->share == 1'000u);
  CHECK(c.canary->hold == Millis(300'000));
  CHECK(parse_ok(with_app("[canary]\nshare = \"1%\"\n")).canary->hold == Millis(0));
  CHECK(config_error(with_app("[canary]\nhold = \"5m\"\n")) ==
        "/etc/baton/test.toml:2:1: [canary] needs a share, e.g. share = \"10%\"");
  CHECK(config_error(with_app("[canary]\nshare = \"50\"\n")) ==
        "/etc/baton/test.toml:3:9: a canary share is a percentage above 0 and below 100, with at "
        "most two decimals (\"10%\", \"2.5%\"), not \"50\"");
}

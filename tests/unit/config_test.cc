// Tests config parsing and validation: TOML files (parse_config, load_config,
// read_control_path), --listen flags (config_from_flags), signal names and
// check_runnable. The limits checked before parsing are in toml_guard_test.cc.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.h"
#include "config_fixture.h"

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
  c.command = {dir.write("app", "#!/bin/sh\nexit 0\n", 0755)};
  c.working_directory = dir.path.string();
  Status ok = check_runnable(c);
  CHECK_MESSAGE(ok.ok(), ok.error().message);

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
  CHECK(check_runnable(c).error().message ==
        "baton: shim: " + c.command[0] + " is not an ELF binary");
  c.command = {"baton-no-such-program"};
  CHECK(check_runnable(c).error().message ==
        "baton: command baton-no-such-program is not an executable file (or not found in PATH)");
  c.command = {"sh"};  // found in PATH
  c.shim = false;
  CHECK(check_runnable(c).ok());
}

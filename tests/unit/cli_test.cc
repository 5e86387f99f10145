// Tests parse_command_line: the commands, options and option combinations
// baton accepts, and the usage errors for everything else.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli.h"

using baton::CommandLine;
using baton::parse_command_line;
using Args = std::vector<std::string>;

namespace {

CommandLine parse_ok(const Args& args) {
  auto cl = parse_command_line(args);
  REQUIRE_MESSAGE(cl.ok(), cl.error().message);
  return cl.value();
}

std::string usage_error(const Args& args) {
  auto cl = parse_command_line(args);
  REQUIRE_FALSE(cl.ok());
  CHECK(cl.error().sys_errno == 0);
  return cl.error().message;
}

}  // namespace

TEST_CASE("run -c FILE reads the config file name") {
  for (const Args& args : {Args{"run", "-c", "app.toml"}, Args{"run", "--config", "app.toml"},
                           Args{"run", "--config=app.toml"}}) {
    CommandLine cl = parse_ok(args);
    CHECK(cl.command == "run");
    CHECK(cl.config_file == "app.toml");
    CHECK(cl.control_path == "");
    CHECK(cl.listens.empty());
    CHECK(cl.app_command.empty());
    CHECK_FALSE(cl.json);
  }
}

TEST_CASE("run with --listen, --control and a command after -- reads them all") {
  CommandLine cl = parse_ok({"run", "--listen", "a=tcp://127.0.0.1:1", "--listen", "b=unix:@b",
                             "--control", "/x", "--", "app", "arg", "--json"});
  CHECK(cl.command == "run");
  CHECK(cl.config_file == "");
  CHECK(cl.listens == Args{"a=tcp://127.0.0.1:1", "b=unix:@b"});
  CHECK(cl.control_path == "/x");
  CHECK(cl.app_command == Args{"app", "arg", "--json"});
  CHECK_FALSE(cl.json);
}

TEST_CASE("--listen=NAME=URL keeps everything after the first '=' as the value") {
  CommandLine cl = parse_ok({"run", "--listen=a=tcp://127.0.0.1:1", "--control=/x", "--", "app"});
  CHECK(cl.listens == Args{"a=tcp://127.0.0.1:1"});
  CHECK(cl.control_path == "/x");
  CHECK(cl.app_command == Args{"app"});
}

TEST_CASE("status, stop and check take their options") {
  CommandLine status = parse_ok({"status", "--json"});
  CHECK(status.command == "status");
  CHECK(status.json);
  CHECK(status.config_file == "");
  CHECK(status.control_path == "");

  CommandLine ready = parse_ok({"status", "--ready", "-c", "app.toml"});
  CHECK(ready.ready);
  CHECK_FALSE(ready.json);
  CHECK(usage_error({"status", "--ready", "--json"}) ==
        "give either --json or --ready, not both (see baton --help)");
  CHECK(usage_error({"reload", "--ready"}) == "reload does not take --ready (see baton --help)");

  CommandLine stop = parse_ok({"stop", "--control", "/run/baton/app.sock"});
  CHECK(stop.command == "stop");
  CHECK(stop.control_path == "/run/baton/app.sock");
  CHECK_FALSE(stop.json);

  CommandLine check = parse_ok({"check", "-c", "app.toml"});
  CHECK(check.command == "check");
  CHECK(check.config_file == "app.toml");

  CHECK(parse_ok({"status", "-c", "app.toml", "--json"}).config_file == "app.toml");
}

TEST_CASE("help, --help and -h give help wherever they appear") {
  for (const Args& args : {Args{"help"}, Args{"--help"}, Args{"-h"}, Args{"run", "--help"},
                           Args{"status", "--json", "-h"}, Args{"check", "-h"},
                           Args{"run", "--listen", "a=unix:@a", "--help", "--", "app"}}) {
    CAPTURE(args.size());
    CHECK(parse_ok(args).command == "help");
  }
}

TEST_CASE("--version and version give the version") {
  CHECK(parse_ok({"--version"}).command == "version");
  CHECK(parse_ok({"version"}).command == "version");
}

TEST_CASE("a missing or unknown command is a usage error") {
  CHECK(usage_error({}) == "missing command (see baton --help)");
  CHECK(usage_error({"start"}) == "unknown command \"start\" (see baton --help)");
  CHECK(usage_error({"-c", "app.toml"}) == "unknown command \"-c\" (see baton --help)");
}

TEST_CASE("check without -c is a usage error") {
  CHECK(usage_error({"check"}) == "check needs -c FILE (see baton --help)");
}

TEST_CASE("run needs either a config file or --listen and a command") {
  const std::string both =
      "run takes either -c FILE or --listen/--control and a command, not both (see baton --help)";
  CHECK(usage_error({"run", "-c", "f.toml", "--listen", "a=unix:@a"}) == both);
  CHECK(usage_error({"run", "-c", "f.toml", "--control", "/x"}) == both);
  CHECK(usage_error({"run", "-c", "f.toml", "--", "app"}) == both);
  CHECK(usage_error({"run"}) == "run needs -c FILE, or a command after -- (see baton --help)");
  CHECK(usage_error({"run", "--listen", "a=unix:@a"}) ==
        "run needs -c FILE, or a command after -- (see baton --help)");
  CHECK(usage_error({"run", "--listen", "a=unix:@a", "--"}) ==
        "run needs -c FILE, or a command after -- (see baton --help)");
  CHECK(usage_error({"run", "--", "app"}) ==
        "run needs at least one --listen NAME=URL (see baton --help)");
}

TEST_CASE("reload takes -c or --control, and --wait") {
  CommandLine cl = parse_ok({"reload", "-c", "f.toml"});
  CHECK(cl.command == "reload");
  CHECK(cl.config_file == "f.toml");
  CHECK_FALSE(cl.wait);
  cl = parse_ok({"reload", "--control", "/run/x.sock", "--wait"});
  CHECK(cl.control_path == "/run/x.sock");
  CHECK(cl.wait);
  CHECK(usage_error({"reload", "--json"}) == "reload does not take --json (see baton --help)");
  CHECK(usage_error({"status", "--wait"}) == "status does not take --wait (see baton --help)");
  CHECK(usage_error({"reload", "--", "x"}) == "reload takes no command (see baton --help)");
}

TEST_CASE("options a command does not take are usage errors") {
  CHECK(usage_error({"status", "--listen", "a=unix:@a"}) ==
        "status does not take --listen (see baton --help)");
  CHECK(usage_error({"stop", "--json"}) == "stop does not take --json (see baton --help)");
  CHECK(usage_error({"check", "-c", "f", "--control", "/x"}) ==
        "check does not take --control (see baton --help)");
  CHECK(usage_error({"version", "-c", "f"}) == "version does not take -c (see baton --help)");
  CHECK(usage_error({"status", "extra"}) == "status does not take extra (see baton --help)");
  CHECK(usage_error({"run", "--bogus=1"}) == "run does not take --bogus=1 (see baton --help)");
}

TEST_CASE("status and stop take either -c or --control, not both") {
  CHECK(usage_error({"status", "-c", "f.toml", "--control", "/x"}) ==
        "give either -c FILE or --control PATH, not both (see baton --help)");
  CHECK(usage_error({"stop", "--control", "/x", "--config", "f.toml"}) ==
        "give either -c FILE or --control PATH, not both (see baton --help)");
}

TEST_CASE("an option at the end without its value is a usage error") {
  CHECK(usage_error({"run", "--listen"}) == "--listen needs a value (see baton --help)");
  CHECK(usage_error({"stop", "--control"}) == "--control needs a value (see baton --help)");
  CHECK(usage_error({"check", "-c"}) == "-c needs a value (see baton --help)");
  CHECK(usage_error({"check", "--config"}) == "--config needs a value (see baton --help)");
}

TEST_CASE("only run takes a command after --") {
  CHECK(usage_error({"status", "--", "x"}) == "status takes no command (see baton --help)");
  CHECK(usage_error({"stop", "--"}) == "stop takes no command (see baton --help)");
}

TEST_CASE("the usage text lists every command") {
  std::string usage = baton::kUsage;
  for (const char* line :
       {"baton run -c FILE", "baton reload", "baton promote", "baton rollback", "baton status",
        "baton stop", "baton check    -c FILE", "baton help | --help | --version"}) {
    CAPTURE(line);
    CHECK(usage.find(line) != std::string::npos);
  }
}

TEST_CASE("run reads the check options into CommandLine::checks") {
  CommandLine cl = parse_ok({"run",
                             "--listen",
                             "http=tcp://127.0.0.1:8080",
                             "--ready-http",
                             "/health",
                             "--ready-tcp",
                             "--ready-exec",
                             "./check --quick",
                             "--ready-notify",
                             "--ready-socket",
                             "http",
                             "--ready-interval=100ms",
                             "--probe-timeout",
                             "2s",
                             "--smoke",
                             "./smoke/a.sh",
                             "--smoke=b c",
                             "--pre-reload",
                             "./migrate up",
                             "--after-drained",
                             "./migrate contract",
                             "--listeners",
                             "shared",
                             "--",
                             "app"});
  const baton::CheckFlags& f = cl.checks;
  CHECK(f.ready_http == "/health");
  CHECK(f.ready_tcp);
  CHECK(f.ready_exec == "./check --quick");
  CHECK(f.ready_notify);
  CHECK(f.ready_socket == "http");
  CHECK(f.ready_interval == "100ms");
  CHECK(f.probe_timeout == "2s");
  CHECK(f.smoke == Args{"./smoke/a.sh", "b c"});
  CHECK(f.pre_reload == "./migrate up");
  CHECK(f.after_drained == "./migrate contract");
  CHECK(f.listeners == "shared");
  CHECK(cl.listens == Args{"http=tcp://127.0.0.1:8080"});
  CHECK(cl.app_command == Args{"app"});
}

TEST_CASE("without check options, CommandLine::checks is empty") {
  const baton::CheckFlags f = parse_ok({"run", "--listen", "a=unix:@a", "--", "app"}).checks;
  CHECK(f.ready_http == "");
  CHECK_FALSE(f.ready_tcp);
  CHECK(f.ready_exec == "");
  CHECK_FALSE(f.ready_notify);
  CHECK(f.ready_socket == "");
  CHECK(f.ready_interval == "");
  CHECK(f.probe_timeout == "");
  CHECK(f.smoke.empty());
  CHECK(f.pre_reload == "");
  CHECK(f.after_drained == "");
  CHECK(f.listeners == "");
}

TEST_CASE("check options are for run without a config file, each given once") {
  const Args listen = {"run", "--listen", "a=unix:@a"};
  auto with = [&](Args extra) {
    Args args = listen;
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", "app"});
    return args;
  };
  CHECK(usage_error(with({"--ready-http", "/a", "--ready-http=/b"})) ==
        "--ready-http is given twice (see baton --help)");
  CHECK(usage_error(with({"--listeners", "shared", "--listeners", "shared"})) ==
        "--listeners is given twice (see baton --help)");
  CHECK(usage_error(with({"--ready-exec="})) == "--ready-exec needs a value (see baton --help)");
  CHECK(usage_error(with({"--smoke", ""})) == "--smoke needs a value (see baton --help)");
  CHECK(usage_error(with({"--ready-tcp=yes"})) == "--ready-tcp takes no value (see baton --help)");
  CHECK(usage_error({"run", "--listen", "a=unix:@a", "--smoke"}) ==
        "--smoke needs a value (see baton --help)");
  CHECK(usage_error({"run", "-c", "f.toml", "--ready-tcp"}) ==
        "with -c FILE, set [ready], [[smoke]], [hooks] and listeners in the config instead of "
        "--ready-tcp (see baton --help)");
  CHECK(usage_error({"run", "-c", "f.toml", "--smoke=x", "--ready-http", "/"}) ==
        "with -c FILE, set [ready], [[smoke]], [hooks] and listeners in the config instead of "
        "--smoke (see baton --help)");
  CHECK(usage_error({"reload", "--ready-http", "/"}) ==
        "reload does not take --ready-http (see baton --help)");
  CHECK(usage_error({"check", "-c", "f", "--listeners", "shared"}) ==
        "check does not take --listeners (see baton --help)");
  CHECK(usage_error({"status", "--json=1"}) == "--json takes no value (see baton --help)");
}

TEST_CASE("the usage text describes every check option") {
  std::string usage = baton::kUsage;
  for (const char* line :
       {"--ready-http PATH", "--ready-tcp", "--ready-exec CMD", "--ready-notify",
        "--ready-socket NAME", "--ready-interval DUR", "--probe-timeout DUR", "--smoke CMD",
        "--pre-reload CMD", "--after-drained CMD", "--listeners MODE", "[CHECK OPTIONS]"}) {
    CAPTURE(line);
    CHECK(usage.find(line) != std::string::npos);
  }
}

TEST_CASE("reload --canary SHARE, promote --wait and rollback") {
  CommandLine cl = parse_ok({"reload", "-c", "app.toml", "--canary", "10%"});
  CHECK(cl.canary == "10%");
  CHECK(parse_ok({"reload", "-c", "app.toml", "--canary=2.5%"}).canary == "2.5%");
  cl = parse_ok({"promote", "-c", "app.toml", "--wait"});
  CHECK(cl.command == "promote");
  CHECK(cl.wait);
  CHECK(parse_ok({"rollback", "--control", "/run/x.sock"}).command == "rollback");
  CHECK(usage_error({"reload", "-c", "app.toml", "--canary", "10"}) ==
        "a canary share is a percentage above 0 and below 100, with at most two decimals "
        "(\"10%\", \"2.5%\"), not \"10\" (see baton --help)");
  CHECK(usage_error({"promote", "--canary", "10%"}) ==
        "promote does not take --canary (see baton --help)");
  CHECK(usage_error({"rollback", "--wait"}) == "rollback does not take --wait (see baton --help)");
}

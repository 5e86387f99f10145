// Parsing `baton COMMAND [OPTIONS] [-- APP ARGS...]`.
#include "cli.h"

#include <algorithm>

#include <fmt/format.h>

namespace baton {

const char kUsage[] = R"(usage:
  baton run -c FILE [--shim]
  baton run --listen NAME=URL [--listen NAME=URL ...] [--control PATH] [--shim] -- COMMAND [ARGS...]
  baton reload [-c FILE | --control PATH] [--wait]
  baton status [-c FILE | --control PATH] [--json]
  baton stop   [-c FILE | --control PATH]
  baton check  -c FILE
  baton help | --help | --version

Binds the listening sockets itself, keeps them open for as long as it runs,
and starts the app with them as inherited fds 3, 4, ... (LISTEN_FDS,
LISTEN_FDNAMES, LISTEN_PID, as systemd socket activation does). The app
reports readiness with READY=1 on NOTIFY_SOCKET (sd_notify).

commands:
  run      supervise the app until stopped (SIGTERM, SIGINT or `baton stop`)
  reload   re-read the config and replace the app without refusing a connection:
           start a new generation, wait for its READY=1 (ready_timeout), then
           tell the old one to drain; if the new one fails, kill it and keep the
           old one serving (exit 1). Shows each step as it happens. SIGHUP to
           `baton run` reloads too. A reload requested while one is starting is
           queued and runs once it ends.
  status   show sockets, generations and app processes (--json: as JSON)
  stop     drain the app (drain_signal, then SIGKILL after drain_timeout) and exit
  check    validate a config file and exit

options:
  -c, --config FILE     the service's TOML config
  --control PATH        the control socket (default: the config's `control`, or
                        /run/baton/NAME.sock as root, $XDG_RUNTIME_DIR/baton/NAME.sock
                        otherwise; NAME is the config's `name`, else "baton")
  --listen NAME=URL     a socket for `run` without a config file; URLs:
                        tcp://127.0.0.1:8080  tcp://[::1]:8080  tcp://0.0.0.0:8080
                        tcp://[::]:8080 (dual-stack)  udp://HOST:PORT
                        unix:/path/app.sock  unix:@abstract-name
  --shim                run: start the app under baton's LD_PRELOAD shim, for programs
                        that bind their own port (config: shim = true); its bind() to a
                        configured address gets baton's socket, and it is made ready and
                        drained without code changes
  --json                machine-readable status
  --wait                reload: also wait until the old generation has exited

exit codes:
  0    success
  1    the request failed or was refused (invalid config, reload rolled back)
  100  wrong usage of the command line
  111  a system call failed (cannot bind a socket, cannot reach baton)
)";

namespace {

constexpr std::string_view kCommands[] = {"run",   "reload", "status", "stop",
                                          "check", "help",   "version"};

Error usage(std::string_view message) {
  return error(fmt::format("{} (see baton --help)", message));
}

/// Which options each command accepts.
bool accepts(std::string_view command, std::string_view option) {
  if (option == "--config") return command != "help" && command != "version";
  if (option == "--control") return command != "check" && command != "help" && command != "version";
  if (option == "--listen") return command == "run";
  if (option == "--json") return command == "status";
  if (option == "--wait") return command == "reload";
  if (option == "--shim") return command == "run";
  return false;
}

Status check_combination(const CommandLine& cl) {
  if (cl.command == "check" && cl.config_file.empty()) return usage("check needs -c FILE");
  if (cl.command != "run") {
    if (!cl.config_file.empty() && !cl.control_path.empty()) {
      return usage("give either -c FILE or --control PATH, not both");
    }
    return {};
  }
  if (!cl.config_file.empty()) {
    if (!cl.listens.empty() || !cl.app_command.empty() || !cl.control_path.empty()) {
      return usage("run takes either -c FILE or --listen/--control and a command, not both");
    }
    if (cl.shim) return usage("with -c FILE, set shim = true in the config instead of --shim");
    return {};
  }
  if (cl.app_command.empty()) return usage("run needs -c FILE, or a command after --");
  if (cl.listens.empty()) return usage("run needs at least one --listen NAME=URL");
  return {};
}

}  // namespace

Result<CommandLine> parse_command_line(const std::vector<std::string>& args) {
  CommandLine cl;
  if (args.empty()) return usage("missing command");
  cl.command = args[0];
  if (cl.command == "--help" || cl.command == "-h") cl.command = "help";
  if (cl.command == "--version") cl.command = "version";
  if (std::find(std::begin(kCommands), std::end(kCommands), cl.command) == std::end(kCommands)) {
    return usage(fmt::format("unknown command \"{}\"", args[0]));
  }
  for (size_t i = 1; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--") {
      if (cl.command != "run") return usage(fmt::format("{} takes no command", cl.command));
      cl.app_command.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (arg == "-h" || arg == "--help") {
      cl.command = "help";
      return cl;
    }
    std::string value;
    bool has_inline = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    const std::string typed = arg;
    if (arg == "-c") arg = "--config";
    if (!accepts(cl.command, arg)) {
      return usage(fmt::format("{} does not take {}", cl.command, args[i]));
    }
    if (arg == "--json" || arg == "--wait" || arg == "--shim") {
      (arg == "--json" ? cl.json : arg == "--wait" ? cl.wait : cl.shim) = true;
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= args.size()) return usage(fmt::format("{} needs a value", typed));
      value = args[++i];
    }
    if (arg == "--config")
      cl.config_file = value;
    else if (arg == "--control")
      cl.control_path = value;
    else
      cl.listens.push_back(value);
  }
  if (Status s = check_combination(cl); !s) return s.error();
  return cl;
}

}  // namespace baton

// Parsing `baton COMMAND [OPTIONS] [-- APP ARGS...]`.
#include "cli.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace baton {

const char kUsage[] = R"(usage:
  baton run -c FILE
  baton run --listen NAME=URL [--listen NAME=URL ...] [--control PATH] [--shim]
            [CHECK OPTIONS] -- COMMAND [ARGS...]
  baton reload   [-c FILE | --control PATH] [--wait] [--canary SHARE] [--logs]
  baton promote  [-c FILE | --control PATH] [--wait]
  baton rollback [-c FILE | --control PATH]
  baton status   [-c FILE | --control PATH] [--json | --ready]
  baton stop     [-c FILE | --control PATH]
  baton logs     [-c FILE | --control PATH] [-f] [-n N] [--generation G]
  baton metrics  [-c FILE | --control PATH]
  baton verify   [-c FILE | --control PATH] [--reloads N] [--duration DUR]
                 [--connections N | --rate N] [--path PATH] [--keepalive]
                 [--socket NAME | --address ADDR]
  baton check    -c FILE
  baton completion bash
  baton help | --help | --version

Binds the listening sockets itself, keeps them open for as long as it runs,
and starts the app with them as inherited fds 3, 4, ... (LISTEN_FDS,
LISTEN_FDNAMES, LISTEN_PID, as systemd socket activation does). The app
reports readiness with READY=1 on NOTIFY_SOCKET (sd_notify), or passes the
configured probes ([ready] in the config, --ready-* options).

commands:
  run      supervise the app until stopped (SIGTERM, SIGINT or `baton stop`)
  reload   re-read the config and replace the app without refusing a connection:
           run the pre_reload hook, start a new generation (with per-generation
           listeners no public connection reaches it yet), wait until it is
           ready (READY=1 and/or its probes, within ready_timeout), run the
           smoke checks against it, switch new connections to it, then tell the
           old one to drain; after_drained runs once no old process is left. If
           a step before the switch fails, the new one is killed and the old one
           keeps serving (exit 1). Shows each step as it happens. SIGHUP to
           `baton run` reloads too. A reload requested while one is starting is
           queued and runs once it ends. --canary 10% (or [canary] in the
           config): once the new generation is ready it gets that share of new
           connections and the reload returns; promote or rollback decide (or
           [canary] hold promotes it by itself).
  promote  a canary takes every new connection; the old generation drains
  rollback during a canary: it gives its share back and drains; within the
           standby window: new connections switch back to the standby at once;
           otherwise the release the last reload replaced (the files it ran,
           symlinks resolved when it started) starts again through a normal
           checked reload
  status   show sockets, instances by generation, the reload in progress with its
           checks, and the last reloads (--json: every fact, as JSON; --ready:
           one line, exit 0 only while a generation serves with a ready instance)
  logs     print the lines baton keeps (the app's output with generation and pid,
           and baton's own events); -f: then follow new ones as they are written
  metrics  print baton's counters and gauges in Prometheus text format
  verify   drive HTTP load at the service's public socket while it reloads, and
           report every failed request by kind; exit 1 on any failure
  completion bash
           print a bash completion script (source it, or put it in
           /usr/share/bash-completion/completions/baton)
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
  --ready               status: exit 0 while baton serves with a ready instance, else 1
                        (a container's readiness probe)
  --wait                reload, promote: also wait until the old generation has exited
  --canary SHARE        reload: a canary with this share of new connections ("10%")
  --logs                reload: also show the new generation's output as it is written
  -f, --follow          logs: keep printing new lines until interrupted
  -n, --lines N         logs: only the last N lines kept (default: every one)
  --generation G        logs: only lines of generation G (its app output and
                        baton's lines about it)

verify options (HTTP GETs at the service's own public socket, loopback only;
a reload's window is from its request to baton's answer; "hung": connected but
no whole answer within 5s; exit 1 if a request or a reload failed):
  --reloads N           reloads during the run, evenly spaced (default 3; 0: none)
  --duration DUR        how long the load runs at least (default 10s; longer if
                        a reload is still running then)
  --connections N       concurrent closed-loop clients (default 8)
  --rate N              or: N requests a second, each due at a fixed time whatever
                        the answers (open loop), from up to max(8, N/50) clients
                        (256 at most)
  --path PATH           the request target (default /)
  --keepalive           reuse connections (default: a new connection per request)
  --socket NAME         which tcp or unix socket to load (default: the first one)
  --address ADDR        load ADDR instead (127.0.0.1:PORT, [::1]:PORT, a unix
                        path): e.g. a proxy on this host in front of the service

check options (run without -c; a config has [ready], [[smoke]], [hooks] and
listeners instead). Every probe given must pass; CMD is run as sh -c CMD:
  --ready-http PATH     ready once GET PATH answers 2xx
  --ready-tcp           ready once the app accepts a connection
  --ready-exec CMD      ready once CMD exits 0
  --ready-notify        require READY=1 too (the default only without a probe)
  --ready-socket NAME   the socket http/tcp probes connect to (default: the first
                        tcp or unix one); http and tcp probes come from 127.0.0.2
  --ready-interval DUR  between attempts (default 250ms, at least 10ms)
  --probe-timeout DUR   one attempt's limit (default 1s, at least 10ms)
  --smoke CMD           after readiness, before the switch; a failure rolls the
                        reload back (repeatable, run in order; 60s each)
  --pre-reload CMD      before the new generation starts; a failure aborts the
                        reload (10m)
  --after-drained CMD   once the old generation has exited (10m)
  --listeners MODE      per-generation (default: each generation gets listeners of
                        its own, so probes reach it alone) or shared

exit codes:
  0    success
  1    the request failed or was refused (invalid config, reload rolled back)
  100  wrong usage of the command line
  111  a system call failed (cannot bind a socket, cannot reach baton)
)";

namespace {

constexpr std::string_view kCommands[] = {"run",  "reload",     "promote", "rollback", "status",
                                          "stop", "check",      "logs",    "verify",   "metrics",
                                          "help", "completion", "version"};

/// verify's options that take a value.
constexpr std::pair<std::string_view, std::string VerifyFlags::*> kVerifyValues[] = {
    {"--reloads", &VerifyFlags::reloads}, {"--duration", &VerifyFlags::duration},
    {"--rate", &VerifyFlags::rate},       {"--connections", &VerifyFlags::connections},
    {"--path", &VerifyFlags::path},       {"--socket", &VerifyFlags::socket},
    {"--address", &VerifyFlags::address},
};

bool is_verify_value(std::string_view option) {
  return std::any_of(std::begin(kVerifyValues), std::end(kVerifyValues),
                     [&](const auto& entry) { return entry.first == option; });
}

/// The check options that take a value; each may be given once (--smoke,
/// which repeats, is apart).
constexpr std::pair<std::string_view, std::string CheckFlags::*> kCheckValues[] = {
    {"--ready-http", &CheckFlags::ready_http},
    {"--ready-exec", &CheckFlags::ready_exec},
    {"--ready-socket", &CheckFlags::ready_socket},
    {"--ready-interval", &CheckFlags::ready_interval},
    {"--probe-timeout", &CheckFlags::probe_timeout},
    {"--pre-reload", &CheckFlags::pre_reload},
    {"--after-drained", &CheckFlags::after_drained},
    {"--listeners", &CheckFlags::listeners},
};
constexpr std::pair<std::string_view, bool CheckFlags::*> kCheckSwitches[] = {
    {"--ready-tcp", &CheckFlags::ready_tcp},
    {"--ready-notify", &CheckFlags::ready_notify},
};

bool is_check_option(std::string_view option) {
  auto named = [&](const auto& entry) { return entry.first == option; };
  return option == "--smoke" ||
         std::any_of(std::begin(kCheckValues), std::end(kCheckValues), named) ||
         std::any_of(std::begin(kCheckSwitches), std::end(kCheckSwitches), named);
}

/// Options that take no value.
bool is_switch(std::string_view option) {
  return option == "--json" || option == "--ready" || option == "--wait" || option == "--shim" ||
         option == "--logs" || option == "--follow" || option == "--keepalive" ||
         std::any_of(std::begin(kCheckSwitches), std::end(kCheckSwitches),
                     [&](const auto& entry) { return entry.first == option; });
}

Error usage(std::string_view message) {
  return error(fmt::format("{} (see baton --help)", message));
}

/// Which options each command accepts.
bool accepts(std::string_view command, std::string_view option) {
  bool client = command != "run" && command != "check" && command != "help" &&
                command != "version" && command != "completion";
  if (option == "--config") return client || command == "run" || command == "check";
  if (option == "--control") return client || command == "run";
  if (option == "--listen") return command == "run";
  if (option == "--json" || option == "--ready") return command == "status";
  if (option == "--wait") return command == "reload" || command == "promote";
  if (option == "--canary") return command == "reload";
  if (option == "--shim") return command == "run";
  if (option == "--logs") return command == "reload";
  if (option == "--follow" || option == "--lines" || option == "--generation") {
    return command == "logs";
  }
  if (option == "--keepalive" || is_verify_value(option)) return command == "verify";
  if (is_check_option(option)) return command == "run";
  return false;
}

void set_switch(CommandLine& cl, std::string_view option) {
  if (option == "--json") cl.json = true;
  if (option == "--ready") cl.ready = true;
  if (option == "--wait") cl.wait = true;
  if (option == "--shim") cl.shim = true;
  if (option == "--logs") cl.logs = true;
  if (option == "--follow") cl.follow = true;
  if (option == "--keepalive") cl.verify.keepalive = true;
  for (auto [name, member] : kCheckSwitches) {
    if (name == option) cl.checks.*member = true;
  }
}

/// Stores the value of an option that takes one; `typed` is the option as written.
Status set_value(CommandLine& cl, const std::string& option, const std::string& typed,
                 const std::string& value) {
  if (option == "--config") {
    cl.config_file = value;
  } else if (option == "--control") {
    cl.control_path = value;
  } else if (option == "--listen") {
    cl.listens.push_back(value);
  } else if (option == "--canary") {
    if (auto share = parse_share(value); !share) return usage(share.error().message);
    cl.canary = value;
  } else if (option == "--lines" || option == "--generation") {
    int n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    bool positive = option == "--generation" ? n >= 1 : n >= 0;
    if (ec != std::errc() || end != value.data() + value.size() || !positive) {
      return usage(fmt::format("{} must be a whole number{}, not \"{}\"", typed,
                               option == "--generation" ? " from 1" : "", value));
    }
    (option == "--lines" ? cl.lines : cl.generation) = n;
  } else if (value.empty()) {
    // A check option with an empty value would read as not given.
    return usage(fmt::format("{} needs a value", typed));
  } else if (option == "--smoke") {
    cl.checks.smoke.push_back(value);
  }
  for (auto [name, member] : kVerifyValues) {
    if (name != option) continue;
    if (value.empty()) return usage(fmt::format("{} needs a value", typed));
    cl.verify.*member = value;
  }
  for (auto [name, member] : kCheckValues) {
    if (name != option) continue;
    std::string& field = cl.checks.*member;
    if (!field.empty()) return usage(fmt::format("{} is given twice", typed));
    field = value;
  }
  return {};
}

/// `first_check` is the first check option given ("" for none).
Status check_combination(const CommandLine& cl, std::string_view first_check) {
  if (cl.command == "check" && cl.config_file.empty()) return usage("check needs -c FILE");
  if (cl.command == "completion" && cl.shell.empty())
    return usage("completion needs a shell: bash");
  if (!cl.verify.rate.empty() && !cl.verify.connections.empty()) {
    return usage("give either --rate or --connections, not both");
  }
  if (cl.json && cl.ready) return usage("give either --json or --ready, not both");
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
    if (!first_check.empty()) {
      return usage(fmt::format(
          "with -c FILE, set [ready], [[smoke]], [hooks] and listeners in the config instead of {}",
          first_check));
    }
    return {};
  }
  if (cl.app_command.empty()) return usage("run needs -c FILE, or a command after --");
  if (cl.listens.empty()) return usage("run needs at least one --listen NAME=URL");
  return {};
}

}  // namespace

Result<CommandLine> parse_command_line(const std::vector<std::string>& args) {
  CommandLine cl;
  std::string first_check;
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
    if (cl.command == "completion" && !arg.starts_with("-")) {
      if (!cl.shell.empty()) return usage("completion takes one shell");
      if (arg != "bash") {
        return usage(fmt::format("no completion for \"{}\": only bash is supported", arg));
      }
      cl.shell = arg;
      continue;
    }
    const std::string typed = arg;
    if (arg == "-c") arg = "--config";
    if (arg == "-f") arg = "--follow";
    if (arg == "-n") arg = "--lines";
    if (!accepts(cl.command, arg)) {
      return usage(fmt::format("{} does not take {}", cl.command, args[i]));
    }
    if (is_check_option(arg) && first_check.empty()) first_check = arg;
    if (is_switch(arg)) {
      if (has_inline) return usage(fmt::format("{} takes no value", arg));
      set_switch(cl, arg);
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= args.size()) return usage(fmt::format("{} needs a value", typed));
      value = args[++i];
    }
    if (Status s = set_value(cl, arg, typed, value); !s) return s.error();
  }
  if (Status s = check_combination(cl, first_check); !s) return s.error();
  return cl;
}

}  // namespace baton

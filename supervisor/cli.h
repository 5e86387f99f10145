// Command-line parsing for every baton command, kept pure so it can be tested.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "result.h"

namespace baton {

/// `baton verify`'s options, as typed; empty: the default.
struct VerifyFlags {
  std::string reloads, duration, rate, connections, path, socket, address;
  bool keepalive = false;
};

struct CommandLine {
  /// "run", "reload", "promote", "rollback", "status", "stop", "check",
  /// "logs", "metrics", "verify", "completion", "help" or "version".
  std::string command;
  std::string config_file;
  std::string control_path;
  std::vector<std::string> listens;
  /// The app's argv, after "--" (run only).
  std::vector<std::string> app_command;
  bool json = false;
  /// status --ready: exit 0 only while a generation serves with a ready instance.
  bool ready = false;
  /// run --shim: run the app under the LD_PRELOAD shim.
  bool shim = false;
  /// reload, promote --wait: also wait until the replaced generation has exited.
  bool wait = false;
  /// reload --canary SHARE, as typed ("10%"; checked here).
  std::string canary;
  /// reload --logs: show the new generation's output while it runs.
  bool logs = false;
  /// logs -f: keep following new lines.
  bool follow = false;
  /// logs -n N: the last N lines (-1: every line kept).
  int lines = -1;
  /// logs --generation G: only lines of generation G (0: every line).
  int generation = 0;
  /// verify's options, as typed (checked by the verify command).
  VerifyFlags verify;
  /// completion SHELL.
  std::string shell;
  /// run without -c: --ready-*, --probe-timeout, --smoke, --pre-reload,
  /// --after-drained and --listeners, as typed.
  CheckFlags checks;
};

/// Parses argv without the program name. Errors are usage errors.
Result<CommandLine> parse_command_line(const std::vector<std::string>& args);

/// The text of `baton --help`.
extern const char kUsage[];

}  // namespace baton

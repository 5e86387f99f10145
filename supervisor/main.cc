// baton's entry point: the exec trampoline first, then command dispatch.
// Only this file chooses exit codes.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli.h"
#include "commands.h"
#include "completion.h"
#include "config.h"
#include "daemon.h"
#include "exec_app.h"
#include "exit_codes.h"
#include "verify.h"

namespace {

int run(const baton::CommandLine& cl) {
  using namespace baton;
  setup_logging();
  auto config =
      cl.config_file.empty()
          ? config_from_flags({cl.listens, cl.control_path, cl.app_command, cl.shim, cl.checks})
          : load_config(cl.config_file);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return kExitFailed;
  }
  // The same checks `baton check` makes, so run refuses what check refuses.
  if (Status s = check_runnable(*config); !s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return kExitFailed;
  }
  return run_daemon(*config);
}

/// The control socket a client command talks to: --control, else the
/// config's, else the default.
baton::Result<std::string> control_path_for(const baton::CommandLine& cl) {
  if (!cl.control_path.empty()) return cl.control_path;
  if (!cl.config_file.empty()) return baton::read_control_path(cl.config_file);
  return baton::default_control_path("baton");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "__exec") == 0) return baton::exec_app(argc, argv);

  using namespace baton;
  auto cl = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!cl) {
    std::fprintf(stderr, "baton: %s\n", cl.error().message.c_str());
    return kExitUsage;
  }
  if (cl->command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (cl->command == "version") {
    std::puts("baton " BATON_VERSION);
    return kExitOk;
  }
  if (cl->command == "run") return run(*cl);
  if (cl->command == "check") return command_check(cl->config_file);
  if (cl->command == "completion") {
    std::fputs(completion_script(cl->shell).c_str(), stdout);
    return kExitOk;
  }
  auto control = control_path_for(*cl);
  if (!control) {
    std::fprintf(stderr, "baton: %s\n", control.error().message.c_str());
    return kExitFailed;
  }
  if (cl->command == "status") return command_status(*control, cl->json, cl->ready);
  if (cl->command == "logs") return command_logs(*control, cl->follow, cl->lines, cl->generation);
  if (cl->command == "metrics") return command_metrics(*control);
  if (cl->command == "verify") return command_verify(*control, cl->verify);
  if (cl->command == "reload" || cl->command == "promote" || cl->command == "rollback") {
    return command_reload(*control, cl->command, cl->wait, cl->canary, cl->logs);
  }
  return command_stop(*control);
}

// Client commands: they talk to a running baton over its control socket.
#include "commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control_client.h"
#include "duration.h"
#include "exit_codes.h"
#include "status_format.h"

namespace baton {
namespace {

int report_failure(const Error& e) {
  std::fprintf(stderr, "baton: %s\n", e.message.c_str());
  return e.sys_errno != 0 ? kExitSystem : kExitFailed;
}

}  // namespace

int command_status(const std::string& control_path, bool json, bool ready) {
  auto reply = control_request(control_path, {{"command", "status"}}, [](const auto&) {});
  if (!reply) return report_failure(reply.error());
  if (!(*reply)["ok"].get<bool>()) {
    return report_failure(error((*reply).value("error", "status failed")));
  }
  const nlohmann::json& status = (*reply)["status"];
  if (ready) {
    Readiness r = readiness(status);
    std::puts(r.line.c_str());
    return r.ready ? kExitOk : kExitFailed;
  }
  std::string text =
      json ? status.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
           : format_status(status, colour_output(STDOUT_FILENO));
  std::fputs(text.c_str(), stdout);
  return kExitOk;
}

int command_stop(const std::string& control_path) {
  auto reply = control_request(control_path, {{"command", "stop"}}, [](const nlohmann::json& ev) {
    if (ev.value("event", "") == "stopping") std::puts("baton: stopping (draining the app)");
    std::fflush(stdout);
  });
  if (!reply) return report_failure(reply.error());
  if (!(*reply)["ok"].get<bool>()) {
    return report_failure(error((*reply).value("error", "stop failed")));
  }
  std::puts("baton: stopped");
  return kExitOk;
}

namespace {

void print_reload_result(const nlohmann::json& reply, bool wait) {
  if (reply.contains("message")) {
    std::printf("baton: %s\n", reply["message"].get<std::string>().c_str());
    return;
  }
  const nlohmann::json& r = reply["reload"];
  std::printf(
      "baton: reload done: generation %d (pid %d) serving; exec after %s, ready after %s, "
      "drain signal after %s\n",
      r["generation"].get<int>(), r["pid"].get<int>(), format_ms(r["request_to_exec_ms"]).c_str(),
      format_ms(r["exec_to_ready_ms"]).c_str(), format_ms(r["ready_to_drain_ms"]).c_str());
  if (wait && r["replaced_pid"].get<int>() != 0) {
    size_t replaced = r.value("replaced_pids", nlohmann::json::array()).size();
    std::string who = replaced > 1 ? fmt::format(": its {} instances are gone; the last", replaced)
                                   : fmt::format(" pid {}", r["replaced_pid"].get<int>());
    std::printf("baton: generation %d%s %s\n", r["replaced_generation"].get<int>(), who.c_str(),
                r["drain_result"].get<std::string>().c_str());
  }
}

}  // namespace

int command_reload(const std::string& control_path, const std::string& command, bool wait,
                   const std::string& canary, bool logs) {
  nlohmann::json request = {{"command", command}, {"wait", wait}};
  if (!canary.empty()) request["canary"] = canary;
  if (logs) request["logs"] = true;
  auto reply = control_request(control_path, request, [](const nlohmann::json& ev) {
    std::string kind = ev.value("event", "");
    if (kind == "log") {
      std::printf("  %s\n", format_log_line(ev).c_str());
    } else if (kind == "dropped") {
      std::printf("baton: %s lines of the new generation's output dropped: not keeping up\n",
                  ev["lines"].dump().c_str());
    } else if (kind == "draining") {
      std::puts("baton: waiting for the old generation to exit");
    } else {
      std::printf("baton: %s%s\n", kind == "queued" ? "queued: " : "",
                  ev.value("message", "").c_str());
    }
    std::fflush(stdout);
  });
  if (!reply) return report_failure(reply.error());
  if ((*reply)["ok"].get<bool>()) {
    print_reload_result(*reply, wait);
    return kExitOk;
  }
  std::fprintf(stderr, "baton: %s failed: %s\n", command.c_str(),
               (*reply).value("error", "").c_str());
  if (reply->contains("stderr") && !(*reply)["stderr"].empty()) {
    std::fprintf(stderr, "baton: the new generation's last stderr lines:\n");
    for (const auto& line : (*reply)["stderr"]) {
      std::fprintf(stderr, "  %s\n", line.get<std::string>().c_str());
    }
  }
  return kExitFailed;
}

std::string format_log_line(const nlohmann::json& line) {
  auto ms = std::chrono::milliseconds(line.value("time", int64_t{0}));
  std::time_t t = std::chrono::duration_cast<std::chrono::seconds>(ms).count();
  std::tm local{};
  localtime_r(&t, &local);
  std::string time = fmt::format("{:%Y-%m-%d %H:%M:%S}.{:03}", local, ms.count() % 1000);
  std::string text = line.value("text", "");
  std::string source = line.value("source", "baton");
  if (source != "baton") {
    return fmt::format("{} [gen {} pid {}] {}", time, line.value("generation", 0),
                       line.value("pid", 0), text);
  }
  std::string level = line.value("level", "info");
  return fmt::format("{} baton{}: {}", time, level == "info" ? "" : " " + level, text);
}

int command_logs(const std::string& control_path, bool follow, int lines, int generation) {
  nlohmann::json request = {{"command", "logs"}, {"follow", follow}};
  if (lines >= 0) request["lines"] = lines;
  if (generation > 0) request["generation"] = generation;
  auto reply = control_request(control_path, request, [](const nlohmann::json& ev) {
    std::string kind = ev.value("event", "");
    if (kind == "log") {
      std::puts(format_log_line(ev).c_str());
    } else if (kind == "dropped") {
      std::printf("baton: %s lines dropped here: this reader was not keeping up\n",
                  ev["lines"].dump().c_str());
    }
    std::fflush(stdout);
  });
  if (!reply) return report_failure(reply.error());
  if (!(*reply)["ok"].get<bool>()) {
    return report_failure(error((*reply).value("error", "logs failed")));
  }
  if (reply->value("event", "") == "stopped") std::fputs("baton: stopped\n", stderr);
  return kExitOk;
}

int command_metrics(const std::string& control_path) {
  auto reply = control_request(control_path, {{"command", "metrics"}}, [](const auto&) {});
  if (!reply) return report_failure(reply.error());
  if (!(*reply)["ok"].get<bool>()) {
    return report_failure(error((*reply).value("error", "metrics failed")));
  }
  std::fputs((*reply)["metrics"].get<std::string>().c_str(), stdout);
  return kExitOk;
}

int command_check(const std::string& config_file) {
  auto config = load_config(config_file);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return kExitFailed;
  }
  // The same checks `baton run` makes before it binds anything.
  if (Status s = check_runnable(*config); !s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return kExitFailed;
  }
  std::printf("%s: ok (%zu socket%s, command %s)\n", config_file.c_str(), config->sockets.size(),
              config->sockets.size() == 1 ? "" : "s", config->command[0].c_str());
  return kExitOk;
}

}  // namespace baton

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

namespace baton {
namespace {

int report_failure(const Error& e) {
  std::fprintf(stderr, "baton: %s\n", e.message.c_str());
  return e.sys_errno != 0 ? kExitSystem : kExitFailed;
}

std::string ago(const nlohmann::json& ms) {
  return format_duration(Millis(ms.get<int64_t>()));
}

std::string ms_text(const nlohmann::json& v) {
  return v.is_number() ? format_duration(Millis(v.get<int64_t>())) : "-";
}

std::string format_last_reload(const nlohmann::json& r, int reloads) {
  if (r.is_null()) return fmt::format("reloads: {}\n", reloads);
  std::string out = fmt::format("reloads: {}; last: {} ago, {}", reloads, ago(r["ago_ms"]),
                                r["result"].get<std::string>());
  if (r["result"] != "ok") return out + fmt::format(": {}\n", r["error"].get<std::string>());
  out +=
      fmt::format(" (generation {} pid {}): exec after {}, ready after {}, drain signal after {}",
                  r["generation"].get<int>(), r["pid"].get<int>(), ms_text(r["request_to_exec_ms"]),
                  ms_text(r["exec_to_ready_ms"]), ms_text(r["ready_to_drain_ms"]));
  if (!r["drain_result"].get<std::string>().empty()) {
    out += fmt::format("; old pid {} {}", r["replaced_pid"].get<int>(),
                       r["drain_result"].get<std::string>());
  }
  return out + "\n";
}

/// The last exit and the pending restart, while the generation is failing.
std::string format_crash_loop(const nlohmann::json& s) {
  const nlohmann::json& last = s.value("last_exit", nlohmann::json());
  const nlohmann::json& next = s.value("next_start_in_ms", nlohmann::json());
  if (last.is_null() || (next.is_null() && !s["instances"].empty())) return "";
  std::string out = fmt::format("  last exit {} ago: {}\n", ago(last["ago_ms"]),
                                last["reason"].get<std::string>());
  if (next.is_number()) {
    out += fmt::format("  next start in {} (failure {} in a row)\n", ago(next),
                       s["consecutive_failures"].get<int>());
  }
  return out;
}

}  // namespace

std::string format_status(const nlohmann::json& s) {
  std::string out =
      fmt::format("baton {} (pid {}) {}, up {}, control {}\n", s["name"].get<std::string>(),
                  s["pid"].get<int>(), s["state"].get<std::string>(), ago(s["uptime_ms"]),
                  s["control"].get<std::string>());
  out += "sockets:\n";
  for (const auto& sock : s["sockets"]) {
    out += fmt::format("  {:<12} {:<28} bound {}, {}\n", sock["name"].get<std::string>(),
                       sock["url"].get<std::string>(), sock["address"].get<std::string>(),
                       sock.value("listeners", ""));
    if (sock.contains("backlog_changed"))
      out += fmt::format("  {:<12} {}\n", "", sock["backlog_changed"].get<std::string>());
  }
  int wanted = s.value("wanted_instances", 1);
  if (wanted > 1) {
    out += fmt::format("generation {}: {} of {} instances ready ({} restarts)\n",
                       s["generation"].get<int>(), s.value("ready_instances", 0), wanted,
                       s["restarts"].get<int>());
  } else {
    out += fmt::format("generation {} ({} restarts)\n", s["generation"].get<int>(),
                       s["restarts"].get<int>());
  }
  if (s["instances"].empty()) out += "  no app process is running\n";
  // The crash loop: per slot with several instances, else the one line.
  if (wanted > 1) {
    for (const auto& r : s.value("restarting", nlohmann::json::array())) {
      out += fmt::format("  instance {} restarts in {} (failure {} in a row); last exit: {}\n",
                         r["instance"].get<int>(), ago(r["next_start_in_ms"]),
                         r["consecutive_failures"].get<int>(), r["last_exit"].get<std::string>());
    }
  } else {
    out += format_crash_loop(s);
  }
  for (const auto& i : s["instances"]) {
    std::string state = i["state"].get<std::string>();
    // The finer state, where it says more: "starting (failing)", "draining (lingering)".
    std::string substate = i.value("substate", state);
    if (substate != state) state += fmt::format(" ({})", substate);
    std::string which =
        wanted > 1 ? fmt::format(" instance {}", i.value("instance", 1)) : std::string();
    out += fmt::format("  gen {}{} pid {} {}, up {}", i["generation"].get<int>(), which,
                       i["pid"].get<int>(), state, ago(i["uptime_ms"]));
    if (i.contains("ready_after_ms"))
      out += fmt::format(", ready after {}", ago(i["ready_after_ms"]));
    if (!i["status"].get<std::string>().empty()) {
      out += fmt::format(", status \"{}\"", i["status"].get<std::string>());
    }
    out += "\n";
    if (i.contains("waiting_for") && !i["waiting_for"].empty()) {
      out += fmt::format("    waiting for {}\n", fmt::join(i["waiting_for"], ", "));
    }
    if (i.contains("probes")) {
      for (const auto& p : i["probes"]) out += fmt::format("    {}\n", p.get<std::string>());
    }
  }
  if (s.contains("release") && !s["release"]["executable"].get<std::string>().empty()) {
    out += fmt::format("  release {} in {}\n", s["release"]["executable"].get<std::string>(),
                       s["release"]["working_directory"].get<std::string>());
  }
  if (s.contains("standby") && s["standby"].is_object()) {
    const auto& sb = s["standby"];
    out += fmt::format(
        "  generation {} is a warm standby ({} ready) for {} more: `baton rollback` switches back "
        "to it\n",
        sb["generation"].get<int>(), sb["ready_instances"].get<int>(), ago(sb["drains_in_ms"]));
  } else if (s.contains("rollback_to") && !s["rollback_to"].empty()) {
    const auto& r = s["rollback_to"][0];
    out += fmt::format("  `baton rollback` starts generation {}'s release again: {} in {}\n",
                       r["generation"].get<int>(), r["executable"].get<std::string>(),
                       r["working_directory"].get<std::string>());
  }
  if (s["reloading"].is_number()) {
    out += fmt::format("reload in progress: generation {} ({})\n", s["reloading"].get<int>(),
                       s.value("reload_step", std::string("starting")));
  }
  out += format_last_reload(s["last_reload"], s["reloads"].get<int>());
  return out;
}

int command_status(const std::string& control_path, bool json) {
  auto reply = control_request(control_path, {{"command", "status"}}, [](const auto&) {});
  if (!reply) return report_failure(reply.error());
  if (!(*reply)["ok"].get<bool>()) {
    return report_failure(error((*reply).value("error", "status failed")));
  }
  const nlohmann::json& status = (*reply)["status"];
  std::string text =
      json ? status.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
           : format_status(status);
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
      r["generation"].get<int>(), r["pid"].get<int>(), ms_text(r["request_to_exec_ms"]).c_str(),
      ms_text(r["exec_to_ready_ms"]).c_str(), ms_text(r["ready_to_drain_ms"]).c_str());
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

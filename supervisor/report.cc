#include "report.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace baton {
namespace {

int64_t since_ms(Clock::time_point t, Clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
}

}  // namespace

int64_t between_ms(Clock::time_point from, Clock::time_point to) {
  if (from == Clock::time_point{} || to == Clock::time_point{}) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

nlohmann::json reload_record_json(const ReloadRecord& r, Clock::time_point now) {
  auto ms = [](int64_t v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"generation", r.generation},
          {"replaced_generation", r.replaced_generation},
          {"pid", r.pid},
          {"replaced_pid", r.replaced_pid},
          {"pids", r.pids},
          {"replaced_pids", r.replaced_pids},
          {"result", r.result},
          {"error", r.error},
          {"ago_ms", since_ms(r.requested_at, now)},
          {"request_to_exec_ms", ms(between_ms(r.requested_at, r.exec_at))},
          {"exec_to_ready_ms", ms(between_ms(r.exec_at, r.ready_at))},
          {"ready_to_drain_ms", ms(between_ms(r.ready_at, r.drain_sent_at))},
          {"drain_ms", ms(between_ms(r.drain_sent_at, r.drained_at))},
          {"drain_result", r.drain_result}};
}

nlohmann::json reload_outcome_json(const ReloadOutcome& o, Clock::time_point now) {
  nlohmann::json reply = {{"ok", o.ok}};
  if (!o.ok) reply["error"] = o.error;
  if (!o.message.empty()) reply["message"] = o.message;
  if (!o.record) return reply;
  if (!o.ok && o.record->result != "refused") reply["stderr"] = o.stderr_tail;
  reply["reload"] = reload_record_json(*o.record, now);
  return reply;
}

nlohmann::json status_json(const StatusSnapshot& s, pid_t pid) {
  using nlohmann::json;
  json sockets = json::array();
  for (const SocketView& v : s.sockets) {
    json sock = {{"name", v.name},
                 {"url", v.url},
                 {"kind", v.kind},
                 {"address", v.address},
                 {"listeners", v.listeners}};
    if (!v.backlog_note.empty()) sock["backlog_changed"] = v.backlog_note;
    sockets.push_back(std::move(sock));
  }
  json instances = json::array();
  for (const InstanceView& inst : s.instances) {
    json i = {{"generation", inst.generation},
              {"instance", inst.instance},
              {"pid", inst.pid},
              {"state", public_state(inst.state)},
              {"substate", to_string(inst.state)},
              {"uptime_ms", since_ms(inst.started_at, s.now)},
              {"status", inst.status_text}};
    if (inst.ready_at != Clock::time_point{}) {
      i["ready_after_ms"] = between_ms(inst.started_at, inst.ready_at);
    }
    if (inst.state == InstanceState::kStarting) {
      i["waiting_for"] = inst.waiting_for;
      i["probes"] = inst.probe_results;
    }
    if (public_state(inst.state) == "draining") {
      i["draining_for_ms"] = since_ms(inst.drain_started_at, s.now);
    }
    instances.push_back(std::move(i));
  }
  json out = {
      {"name", s.name},
      {"pid", pid},
      {"state", s.state},
      {"uptime_ms", since_ms(s.started_at, s.now)},
      {"control", s.control},
      {"generation", s.generation},
      {"restarts", s.restarts},
      {"reloads", s.reloads},
      {"wanted_instances", s.instances_wanted},
      {"ready_instances", s.ready_instances},
      {"reloading", s.reloading ? json(*s.reloading) : json(nullptr)},
      {"reload_step", s.reloading ? json(s.reload_step) : json(nullptr)},
      {"candidate_share_percent", s.reloading ? json(s.candidate_share / 100.0) : json(nullptr)},
      {"sockets", std::move(sockets)},
      {"instances", std::move(instances)}};
  out["last_reload"] = s.last_reload ? reload_record_json(*s.last_reload, s.now) : json(nullptr);
  out["consecutive_failures"] = s.consecutive_failures;
  out["last_exit"] = s.last_exit.empty() ? json(nullptr)
                                         : json{{"reason", s.last_exit},
                                                {"ago_ms", since_ms(s.last_exit_at, s.now)}};
  out["next_start_in_ms"] = s.next_start_at == Clock::time_point{}
                                ? json(nullptr)
                                : json(std::max<int64_t>(0, -since_ms(s.next_start_at, s.now)));
  auto release = [](const ReleaseView& r) {
    return json{{"generation", r.generation},
                {"executable", r.executable},
                {"working_directory", r.working_directory}};
  };
  out["release"] = release(s.release);
  out["rollback_to"] = json::array();
  for (const ReleaseView& r : s.rollback_to) out["rollback_to"].push_back(release(r));
  out["standby"] = nullptr;
  if (s.standby) {
    out["standby"] = {{"generation", s.standby->generation},
                      {"ready_instances", s.standby->ready_instances},
                      {"drains_in_ms", std::max<int64_t>(0, -since_ms(s.standby->until, s.now))}};
  }
  out["canary"] = nullptr;
  if (s.canary) {
    out["canary"] = {
        {"generation", s.reloading ? json(*s.reloading) : json(nullptr)},
        {"share_percent", s.candidate_share / 100.0},
        {"for_ms", since_ms(s.canary->since, s.now)},
        {"promote_in_ms", s.canary->promote_at == Clock::time_point{}
                              ? json(nullptr)
                              : json(std::max<int64_t>(0, -since_ms(s.canary->promote_at, s.now)))},
        {"last_probe", s.canary->last_probe.empty() ? json(nullptr) : json(s.canary->last_probe)}};
  }
  json restarting = json::array();
  for (const StatusSnapshot::Restarting& r : s.restarting) {
    restarting.push_back(
        {{"instance", r.instance},
         {"next_start_in_ms", std::max<int64_t>(0, -since_ms(r.next_start_at, s.now))},
         {"last_exit", r.last_exit},
         {"consecutive_failures", r.consecutive_failures}});
  }
  out["restarting"] = std::move(restarting);
  // The last reloads, newest first: last_reload, then those before it.
  json recent = json::array();
  if (s.last_reload) recent.push_back(reload_record_json(*s.last_reload, s.now));
  for (const ReloadRecord& r : s.earlier_reloads) recent.push_back(reload_record_json(r, s.now));
  out["recent_reloads"] = std::move(recent);
  out["candidate"] = nullptr;
  if (s.reloading) {
    json checks = json::array();
    for (const StatusSnapshot::CheckView& c : s.candidate_checks) {
      checks.push_back({{"name", c.name}, {"state", c.state}, {"detail", c.detail}});
    }
    json candidate = {{"generation", *s.reloading},
                      {"step", s.reload_step},
                      {"share_percent", s.candidate_share / 100.0},
                      {"checks", std::move(checks)}};
    out["candidate"] = std::move(candidate);
  }
  return out;
}

std::string status_text(const StatusSnapshot& s) {
  std::string text;
  if (s.serving) {
    text = fmt::format("generation {} pid {} {}", s.generation, s.serving->pid,
                       public_state(s.serving->state));
  } else if (s.state == "running") {
    text = fmt::format("generation {} restarting", s.generation);
  } else {
    text = "stopping";
  }
  if (s.candidate) {
    text += fmt::format("; reloading: generation {} pid {} {}", s.candidate->generation,
                        s.candidate->pid, public_state(s.candidate->state));
  } else if (s.last_reload) {
    text += fmt::format("; last reload {}", s.last_reload->result);
  }
  return text;
}

}  // namespace baton

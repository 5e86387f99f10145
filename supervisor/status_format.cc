#include "status_format.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "duration.h"

namespace baton {
namespace {

using nlohmann::json;

constexpr std::string_view kGreen = "\033[32m", kYellow = "\033[33m", kRed = "\033[31m",
                           kCyan = "\033[36m", kDim = "\033[2m", kBold = "\033[1m",
                           kReset = "\033[m";

/// Columns a string takes on a terminal: its UTF-8 code points.
size_t width(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

struct Cell {
  std::string text;
  std::string_view colour = {};
};

/// Rows of cells under headings, each column as wide as its widest cell;
/// a row may carry lines printed under it (what an instance waits for).
class Table {
 public:
  explicit Table(std::vector<std::string> headings) : headings_(std::move(headings)) {}

  void add(std::vector<Cell> cells) { rows_.push_back({std::move(cells), {}}); }
  void note(std::string line) { rows_.back().notes.push_back(std::move(line)); }
  bool empty() const { return rows_.empty(); }

  std::string render(std::string_view indent, bool colour) const {
    std::vector<size_t> widths(headings_.size());
    for (size_t c = 0; c < headings_.size(); ++c) widths[c] = width(headings_[c]);
    for (const Row& r : rows_) {
      for (size_t c = 0; c < r.cells.size(); ++c)
        widths[c] = std::max(widths[c], width(r.cells[c].text));
    }
    std::vector<Cell> heading;
    for (const std::string& h : headings_) heading.push_back({h, kBold});
    std::string out = line(heading, widths, indent, colour);
    for (const Row& r : rows_) {
      out += line(r.cells, widths, indent, colour);
      for (const std::string& n : r.notes) out += fmt::format("{}  {}\n", indent, n);
    }
    return out;
  }

 private:
  struct Row {
    std::vector<Cell> cells;
    std::vector<std::string> notes;
  };

  /// One row: cells two spaces apart, the last one unpadded.
  static std::string line(const std::vector<Cell>& cells, const std::vector<size_t>& widths,
                          std::string_view indent, bool colour) {
    std::string out(indent);
    for (size_t c = 0; c < cells.size(); ++c) {
      const Cell& cell = cells[c];
      bool paint = colour && !cell.colour.empty() && !cell.text.empty();
      if (paint) out += cell.colour;
      out += cell.text;
      if (paint) out += kReset;
      if (c + 1 < cells.size()) out.append(widths[c] - width(cell.text) + 2, ' ');
    }
    while (out.size() > indent.size() && out.back() == ' ') out.pop_back();
    return out + "\n";
  }

  std::vector<std::string> headings_;
  std::vector<Row> rows_;
};

std::string str(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int num(const json& object, const char* key, int otherwise = 0) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<int>() : otherwise;
}

std::string plural(int n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string_view state_colour(std::string_view state) {
  if (state == "ready") return kGreen;
  if (state == "starting") return kYellow;
  if (state == "draining") return kCyan;
  return kRed;  // failing, or a state added later: worth a look
}

std::string_view result_colour(std::string_view result) {
  if (result == "ok" || result == "passed") return kGreen;
  if (result == "running" || result == "starting" || result == "refused") return kYellow;
  if (result == "pending" || result == "skipped") return kDim;
  return kRed;  // rolled back, aborted, failed
}

std::string sockets(const json& s, bool colour) {
  Table t({"SOCKET", "URL", "BOUND", "LISTENERS"});
  for (const json& sock : s["sockets"]) {
    t.add({{str(sock, "name")},
           {str(sock, "url")},
           {str(sock, "address")},
           {str(sock, "listeners")}});
    if (sock.contains("backlog_changed")) t.note(str(sock, "backlog_changed"));
  }
  return t.render("", colour);
}

/// What a generation is to the service: the one serving, the reload's
/// candidate, the warm standby, or an old one on its way out.
std::string role(const json& s, int generation) {
  if (s["reloading"].is_number() && s["reloading"].get<int>() == generation) return "candidate";
  if (generation == num(s, "generation")) return "serving";
  if (s["standby"].is_object() && num(s["standby"], "generation") == generation) return "standby";
  return "old";
}

std::string instances(const json& s, bool colour) {
  if (s["instances"].empty()) return "no app process is running\n";
  bool several = num(s, "wanted_instances", 1) > 1;
  for (const json& i : s["instances"]) several = several || num(i, "instance", 1) != 1;
  std::vector<std::string> headings = {"GEN", "ROLE"};
  if (several) headings.push_back("INSTANCE");
  for (const char* h : {"PID", "STATE", "UP", "READY AFTER", "STATUS"}) headings.push_back(h);
  Table t(std::move(headings));
  for (const json& i : s["instances"]) {
    std::string state = str(i, "state");
    // The finer state, where it says more: "starting (failing)", "draining (lingering)".
    std::string substate = i.contains("substate") ? str(i, "substate") : state;
    std::string shown = substate != state ? fmt::format("{} ({})", state, substate) : state;
    if (i.contains("draining_for_ms")) shown += " for " + format_ms(i["draining_for_ms"]);
    std::string status = str(i, "status");
    std::vector<Cell> row = {{std::to_string(num(i, "generation"))},
                             {role(s, num(i, "generation"))}};
    if (several) row.push_back({std::to_string(num(i, "instance", 1))});
    row.push_back({std::to_string(num(i, "pid"))});
    row.push_back({shown, state_colour(substate == "failing" ? substate : state)});
    row.push_back({format_ms(i["uptime_ms"])});
    row.push_back({i.contains("ready_after_ms") ? format_ms(i["ready_after_ms"]) : "-"});
    row.push_back({status.empty() ? "" : fmt::format("\"{}\"", status)});
    t.add(std::move(row));
    if (i.contains("waiting_for") && !i["waiting_for"].empty())
      t.note(fmt::format("waiting for {}", fmt::join(i["waiting_for"], ", ")));
    if (i.contains("probes")) {
      for (const json& p : i["probes"]) t.note(p.get<std::string>());
    }
  }
  return t.render("", colour);
}

/// The serving generation's failures: per slot with several instances, else
/// the last exit and the pending restart.
std::string crash_loop(const json& s) {
  std::string out;
  if (num(s, "wanted_instances", 1) > 1) {
    for (const json& r : s.value("restarting", json::array())) {
      out += fmt::format("instance {} restarts in {} (failure {} in a row); last exit: {}\n",
                         num(r, "instance"), format_ms(r["next_start_in_ms"]),
                         num(r, "consecutive_failures"), str(r, "last_exit"));
    }
    return out;
  }
  const json& last = s.value("last_exit", json());
  const json& next = s.value("next_start_in_ms", json());
  if (last.is_null() || (next.is_null() && !s["instances"].empty())) return "";
  out += fmt::format("last exit {} ago: {}\n", format_ms(last["ago_ms"]), str(last, "reason"));
  if (next.is_number()) {
    out += fmt::format("next start in {} (failure {} in a row)\n", format_ms(next),
                       num(s, "consecutive_failures"));
  }
  return out;
}

std::string releases(const json& s) {
  std::string out;
  if (s.contains("release") && !str(s["release"], "executable").empty()) {
    out += fmt::format("release: {} in {}\n", str(s["release"], "executable"),
                       str(s["release"], "working_directory"));
  }
  if (s.contains("standby") && s["standby"].is_object()) {
    const json& sb = s["standby"];
    out += fmt::format(
        "standby: generation {} ({} ready) for {} more: `baton rollback` switches back to it\n",
        num(sb, "generation"), num(sb, "ready_instances"), format_ms(sb["drains_in_ms"]));
  } else if (s.contains("rollback_to") && !s["rollback_to"].empty()) {
    const json& r = s["rollback_to"][0];
    out +=
        fmt::format("rollback: `baton rollback` starts generation {}'s release again: {} in {}\n",
                    num(r, "generation"), str(r, "executable"), str(r, "working_directory"));
  }
  return out;
}

std::string candidate(const json& s, bool colour) {
  if (!s["reloading"].is_number()) return "";
  std::string out =
      fmt::format("reload in progress: generation {} ({})", s["reloading"].get<int>(),
                  s["reload_step"].is_string() ? s["reload_step"].get<std::string>() : "starting");
  const json& c = s.value("candidate", json());
  double share = c.is_object() ? c.value("share_percent", 0.0) : 0.0;
  if (share > 0) out += fmt::format(", {}% of new connections", share);
  out += "\n";
  if (s.contains("canary") && s["canary"].is_object()) {
    const json& k = s["canary"];
    out += fmt::format("  canary for {}; ", format_ms(k["for_ms"]));
    out += k["promote_in_ms"].is_number()
               ? fmt::format("promoted in {} unless rolled back", format_ms(k["promote_in_ms"]))
               : std::string("waiting for `baton promote` or `baton rollback`");
    if (k["last_probe"].is_string()) out += "; last probe: " + k["last_probe"].get<std::string>();
    out += "\n";
  }
  if (!c.is_object() || c["checks"].empty()) return out;
  Table t({"CHECK", "STATE", "DETAIL"});
  for (const json& check : c["checks"]) {
    std::string state = str(check, "state");
    t.add({{str(check, "name")}, {state, result_colour(state)}, {str(check, "detail")}});
  }
  return out + t.render("  ", colour);
}

std::string reloads(const json& s, bool colour) {
  int total = num(s, "reloads");
  // Before `recent_reloads`, a status had the last one only.
  json recent = s.value("recent_reloads", json::array());
  if (recent.empty() && s["last_reload"].is_object()) recent.push_back(s["last_reload"]);
  if (recent.empty()) return fmt::format("reloads: {}\n", total);
  std::string out = fmt::format("reloads: {} committed", total);
  out += recent.size() == 1 ? std::string("; the last one:\n")
                            : fmt::format("; the last {}, newest first:\n", recent.size());
  Table t({"WHEN", "GEN", "RESULT", "TO EXEC", "TO READY", "TO SWITCH", "DRAIN", "OLD PROCESS"});
  for (const json& r : recent) {
    std::string result = str(r, "result");
    int from = num(r, "replaced_generation"), to = num(r, "generation");
    std::string gen = to == 0     ? "-"
                      : from == 0 ? std::to_string(to)
                                  : fmt::format("{} → {}", from, to);
    std::string old;
    if (!str(r, "drain_result").empty()) {
      old = fmt::format("pid {} {}", num(r, "replaced_pid"), str(r, "drain_result"));
    } else if (result == "ok" && num(r, "replaced_pid") != 0) {
      old = fmt::format("pid {} draining", num(r, "replaced_pid"));
    }
    t.add({{format_ms(r["ago_ms"]) + " ago"},
           {gen},
           {result, result_colour(result)},
           {format_ms(r["request_to_exec_ms"])},
           {format_ms(r["exec_to_ready_ms"])},
           {format_ms(r["ready_to_drain_ms"])},
           {r.contains("drain_ms") ? format_ms(r["drain_ms"]) : "-"},
           {old}});
    if (!str(r, "error").empty()) t.note(str(r, "error"));
  }
  return out + t.render("  ", colour);
}

}  // namespace

std::string format_status(const json& s, bool colour) {
  std::string out =
      fmt::format("baton {} (pid {}) {}, up {}, control {}\n", str(s, "name"), num(s, "pid"),
                  str(s, "state"), format_ms(s["uptime_ms"]), str(s, "control"));
  int wanted = num(s, "wanted_instances", 1);
  out += fmt::format("serving: generation {}, {} of {} ready, {}\n", num(s, "generation"),
                     num(s, "ready_instances", 0), plural(wanted, "instance", "instances"),
                     plural(num(s, "restarts"), "restart", "restarts"));
  out += "\n" + sockets(s, colour);
  out += "\n" + instances(s, colour) + crash_loop(s);
  std::string more = releases(s) + candidate(s, colour);
  if (!more.empty()) out += "\n" + more;
  out += "\n" + reloads(s, colour);
  return out;
}

Readiness readiness(const json& s) {
  int generation = num(s, "generation");
  int ready = num(s, "ready_instances");
  int wanted = num(s, "wanted_instances", 1);
  if (str(s, "state") != "running")
    return {false, fmt::format("not ready: baton is {}", str(s, "state"))};
  if (ready > 0) {
    return {true, fmt::format("ready: generation {}, {} of {} ready", generation, ready,
                              plural(wanted, "instance", "instances"))};
  }
  std::string why = fmt::format("not ready: generation {} has no ready instance", generation);
  for (const json& i : s["instances"]) {
    if (num(i, "generation") != generation || !i.contains("waiting_for") ||
        i["waiting_for"].empty())
      continue;
    why += fmt::format(" (waiting for {})", fmt::join(i["waiting_for"], ", "));
    break;
  }
  const json& last = s.value("last_exit", json());
  if (last.is_object()) why += "; last exit: " + str(last, "reason");
  return {false, why};
}

std::string format_ms(const json& v) {
  return v.is_number() ? format_duration(Millis(v.get<int64_t>())) : "-";
}

bool colour_output(int fd) {
  if (isatty(fd) != 1) return false;
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour && *no_colour) return false;
  const char* term = std::getenv("TERM");
  return !(term && std::strcmp(term, "dumb") == 0);
}

}  // namespace baton

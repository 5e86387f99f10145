// The client commands (`status`, `reload`, `promote`, `rollback`, `stop`) and `check`: each returns
// an exit code.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "config.h"

namespace baton {

/// `ready`: status --ready (one line; exit 0 only while ready).
int command_status(const std::string& control_path, bool json, bool ready = false);
int command_stop(const std::string& control_path);
/// `reload`, `promote` and `rollback` (`command`); `canary`: reload
/// --canary's share as typed ("10%"), empty for none.
/// `logs`: the new generation's output lines as they are written.
int command_reload(const std::string& control_path, const std::string& command, bool wait,
                   const std::string& canary = "", bool logs = false);
/// `baton logs`: `lines` < 0 for every line kept, `generation` 0 for all.
int command_logs(const std::string& control_path, bool follow, int lines, int generation);
/// `baton metrics`: Prometheus text format.
int command_metrics(const std::string& control_path);
int command_check(const std::string& config_file);

/// A log event as `baton logs` prints it: "2026-12-02 18:59:01.123 [gen 2
/// pid 9455] text", or "... baton: text" ("baton warning: ..." above info).
std::string format_log_line(const nlohmann::json& line);

}  // namespace baton

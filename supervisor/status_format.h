// `baton status` for people: the JSON of `status --json` laid out as a few
// aligned tables (sockets, instances, the reload candidate's checks, the
// last reloads), coloured only when asked to (a terminal).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace baton {

/// A JSON count of milliseconds as a duration ("1.2s"); "-" when it is not
/// a number (a step that did not happen).
std::string format_ms(const nlohmann::json& ms);

/// `colour`: ANSI colours for states and results, bold headings.
std::string format_status(const nlohmann::json& status, bool colour = false);

/// `status --ready`: whether baton serves with at least one ready instance
/// of its serving generation (and is not stopping), and the line that says
/// so ("ready: generation 3, 2 of 2 instances ready", "not ready: ...").
struct Readiness {
  bool ready = false;
  std::string line;
};
Readiness readiness(const nlohmann::json& status);

/// Whether output to `fd` should be coloured: a terminal, NO_COLOR unset
/// and TERM not "dumb".
bool colour_output(int fd);

}  // namespace baton

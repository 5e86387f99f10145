// Internal to the config reader: what config.cc (the service settings,
// parsing, validation) and config_checks.cc (the checked-deploy settings)
// share. Not for other files: only these two include toml++.
#pragma once

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
// toml++ asserts things about its input (TOML_ASSERT_ASSUME in parse_time,
// parse_value) that a malformed config breaks; its release path then reports
// a parse error, but without NDEBUG the assert aborts baton. A config must
// never do that, so its asserts are off in the files that include it: the
// two config readers, through this header and nowhere else.
#ifdef TOML_LIB_MAJOR
#error "toml++ is included before config_read.h, with its asserts on"
#endif
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>

#include "config.h"

namespace baton::config_read {

/// Collects every problem found in one file, each prefixed with its position.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_region& where, std::string_view message) {
    add(where.begin, message);
  }
  void add(const toml::source_position& where, std::string_view message) {
    lines_.push_back(
        {where, fmt::format("{}:{}:{}: {}", file_, where.line, where.column, message)});
  }
  /// A problem of the whole file, reported after the positioned ones.
  void add(std::string_view message) {
    lines_.push_back({kWholeFile, fmt::format("{}: {}", file_, message)});
  }
  /// At `where` when known, else a problem of the whole file.
  void add(const std::optional<toml::source_position>& where, std::string_view message) {
    if (where)
      add(*where, message);
    else
      add(message);
  }
  bool empty() const { return lines_.empty(); }
  /// Every problem, one per line, in the order they stand in the file.
  Error error() const {
    auto sorted = lines_;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<std::string> text;
    for (const auto& line : sorted) text.push_back(line.second);
    return baton::error(fmt::format("{}", fmt::join(text, "\n")));
  }

 private:
  static constexpr toml::source_position kWholeFile{~0u, ~0u};
  std::string file_;
  std::vector<std::pair<toml::source_position, std::string>> lines_;
};

/// Reports every key of `table` not in `allowed`, with the closest allowed
/// one as a hint. `where` names the table in messages.
void check_keys(const toml::table& table, std::span<const std::string_view> allowed,
                std::string_view where, Problems& problems);

/// Reads an optional string; reports a type error as a problem. `label`
/// names the key in messages (default: `key`; "ready.socket" for a nested one).
std::optional<std::string> get_string(const toml::table& table, std::string_view key,
                                      Problems& problems, std::string_view label = {});

/// Reads an optional duration into `out`; returns its node when it was read.
const toml::node* read_duration(const toml::table& table, std::string_view key, Millis& out,
                                Problems& problems, std::string_view label = {});

/// Reads an optional boolean; an integer is not one (toml++ would convert it).
void read_bool(const toml::table& table, std::string_view key, bool& out, Problems& problems,
               std::string_view label = {});

/// A program and its arguments: a non-empty array of strings.
std::optional<std::vector<std::string>> read_argv(const toml::node& node, std::string_view label,
                                                  Problems& problems);

/// Where `key` of `table` is written (toml++ gives a value's node the
/// position of the value).
toml::source_position key_position(const toml::table& table, std::string_view key);

/// `path` relative to `base_dir` (the config's directory) unless absolute.
std::string resolve(const std::string& base_dir, const std::string& path);

/// Where a setting that validate() checks against the rest came from, for
/// its messages: a file's dotted key and its position, or the flag.
struct Origin {
  explicit Origin(std::string name, bool given = false) : name(std::move(name)), given(given) {}

  std::string name;
  std::optional<toml::source_position> at;
  /// Written in the file or given as a flag, rather than left at its default.
  bool given = false;
};

/// The origins of the readiness settings validate() cross-checks.
struct ReadyOrigins {
  Origin http, tcp, socket, timeout, notify;
  /// Every [[socket]] table was read (none was refused): only then can a
  /// missing socket be blamed on ready.socket.
  bool sockets_complete = true;
};

// The checked-deploy settings (config_checks.cc).

/// listeners, [ready], [[smoke]] and [hooks] of a config file.
void read_checks(const toml::table& top, Config& config, ReadyOrigins& origins, Problems& problems);
/// The same settings from `baton run` flags.
void read_check_flags(const CheckFlags& flags, Config& config, Problems& problems);
/// Resolves the programs of the exec probe, smoke checks and hooks.
void resolve_check_programs(Config& config, Problems& problems);
/// Cross-checks [ready] against ready_timeout and the sockets.
void validate_ready(const Config& config, const ReadyOrigins& origins, Problems& problems);

}  // namespace baton::config_read

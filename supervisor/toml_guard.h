// Checks of config text made before toml++ parses it: the size and nesting
// bounds that keep the parser from running away, and a plain-line reader of
// `name` and `control` for client commands when the TOML does not parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace baton {

/// The longest config baton reads: far above any real one, and small enough
/// that a runaway file costs nothing.
inline constexpr size_t kMaxConfigBytes = 1024 * 1024;

/// The error for a config at `path` longer than kMaxConfigBytes. `size` is
/// its length when known; a pipe or device read only up to the limit has none.
Error config_too_large(const std::string& path, std::optional<uint64_t> size);

/// Refuses text toml++ could not parse safely: longer than kMaxConfigBytes,
/// or nested more than 64 levels deep (the parser recurses once per level, so
/// 50,000 levels would overflow its stack). A level is a part of a dotted key
/// or an array or inline table opened in a value; the error names the
/// `path:line:column` where nesting first goes too deep.
Status check_toml_limits(std::string_view text, const std::string& path);

/// `name` and `control` as the plain lines before the first table header
/// give them, read without the TOML parser: for client commands when the
/// rest of the file does not parse. The first of each counts.
struct IdentityLines {
  std::optional<std::string> name, control;
};

/// Reads the lines `key = "value"` or `key = 'value'` (with an optional
/// comment, and no escapes in the string) before the first table header.
/// Multi-line strings and arrays are skipped whole, so a line inside one is
/// not read as a key.
IdentityLines read_identity_lines(std::string_view text);

}  // namespace baton

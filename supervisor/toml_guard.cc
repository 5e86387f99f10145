// The text scanning that runs before toml++ sees a config: the size and
// nesting bounds that keep the parser's recursion in check, and the reader of
// plain `name` / `control` lines that client commands fall back on.
#include "toml_guard.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace baton {
namespace {

/// The deepest nesting a config may have; toml++ recurses once per level.
constexpr int kMaxNesting = 64;

/// A position in TOML text, walked a byte at a time. It skips comments and
/// all four string forms the way toml++ reads them, and reports line and
/// column as toml++ does (columns count UTF-8 code points).
class TomlCursor {
 public:
  explicit TomlCursor(std::string_view text) : text_(text) {}

  bool done() const { return i_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[i_]; }
  size_t offset() const { return i_; }
  void next() { ++i_; }
  /// The rest of the current line, from here.
  std::string_view rest_of_line() const {
    std::string_view rest = text_.substr(i_);
    return rest.substr(0, rest.find('\n'));
  }
  void skip_spaces() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\r') next();
  }
  /// From '#' to the end of the line (the newline stays).
  void skip_comment() {
    while (!done() && peek() != '\n') next();
  }
  /// From an opening quote past the closing one. A single-line string stops
  /// at the end of its line if unterminated: the parser reports it there.
  void skip_string() {
    char quote = peek();
    std::string_view triple = quote == '"' ? R"(""")" : "'''";
    bool multi = text_.substr(i_).starts_with(triple);
    i_ += multi ? 3 : 1;
    while (!done()) {
      char c = peek();
      if (c == '\\' && quote == '"') {
        i_ = std::min(i_ + 2, text_.size());
      } else if (c == '\n' && !multi) {
        return;
      } else if (c == quote && (!multi || text_.substr(i_).starts_with(triple))) {
        i_ += multi ? 3 : 1;
        // Up to two quotes may stand just before the closing three: """a"""" ends with a quote.
        for (int extra = 0; multi && extra < 2 && peek() == quote; ++extra) next();
        return;
      } else {
        next();
      }
    }
  }
  /// Past the next newline that is outside strings, comments and brackets.
  void skip_statement() {
    int depth = 0;
    while (!done()) {
      char c = peek();
      if (c == '#') {
        skip_comment();
      } else if (c == '"' || c == '\'') {
        skip_string();
      } else {
        next();
        if (c == '[' || c == '{') ++depth;
        if ((c == ']' || c == '}') && depth > 0) --depth;
        if (c == '\n' && depth == 0) return;
      }
    }
  }
  /// "file:line:column" of the current byte.
  std::string where(const std::string& file) const {
    std::string_view before = text_.substr(0, i_);
    size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
    size_t column = 1;
    for (size_t j = line_start; j < i_; ++j) {
      if ((static_cast<unsigned char>(text_[j]) & 0xC0) != 0x80) ++column;
    }
    return fmt::format("{}:{}:{}", file, line, column);
  }

 private:
  std::string_view text_;
  size_t i_ = 0;
};

/// Measures how deeply TOML text nests before toml++ parses it: the parser
/// and the tables it builds recurse once per level, so 50,000 levels
/// overflow the stack. A level is a part of a dotted key (in a [table]
/// header, an [[array]] header, a key = value line or an inline table) or
/// an array or inline table opened in a value. Dots in values (1.5, times)
/// are not keys. Invalid TOML is measured as far as it reads; the parser
/// stops at its first error, so only the valid start of it matters.
class NestingScanner {
 public:
  explicit NestingScanner(std::string_view text) : cursor_(text) {}

  /// Where nesting first goes deeper than kMaxNesting; nullopt if it never does.
  std::optional<TomlCursor> find_too_deep() {
    start_line();
    while (!cursor_.done()) {
      if (!step()) return cursor_;
    }
    return std::nullopt;
  }

 private:
  /// An array or inline table opened in a value.
  struct Open {
    char kind;  // '[' or '{'
    int depth;  // its own level
  };

  /// Reads one byte (or one comment or string); false where nesting is too deep.
  bool step() {
    char c = cursor_.peek();
    if (c == '#') {
      cursor_.skip_comment();
      return true;
    }
    if (c == '"' || c == '\'') {
      if (in_key_ && !start_segment()) return false;
      cursor_.skip_string();
      return true;
    }
    bool ok = in_key_ ? key_byte(c) : value_byte(c);
    if (ok) cursor_.next();
    if (c == '\n' && open_.empty()) start_line();
    return ok;
  }

  bool key_byte(char c) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return true;
    if (c == '}' && !open_.empty()) {  // {} or a trailing comma: the inline table ends
      in_key_ = false;
      return value_byte(c);
    }
    if (c == '[' && open_.empty() && !in_header_ && segments_ == 0) {
      in_header_ = true;  // a [table] or [[array]] header: its keys start from the top
      return true;
    }
    if (c == '[' && in_header_ && segments_ == 0) return true;  // the second '[' of [[
    if (c == '.') {
      need_segment_ = true;
      return true;
    }
    if (c == ']' && in_header_) {
      table_depth_ = segments_;
      in_key_ = in_header_ = false;  // what follows on the line is not a key
      return true;
    }
    if (c == '=' && !in_header_) {
      value_depth_ = key_base() + segments_;
      in_key_ = false;
      return true;
    }
    return start_segment();
  }

  bool value_byte(char c) {
    if (c == '[' || c == '{') {
      int depth = value_depth_ + 1;
      if (depth > kMaxNesting) return false;
      open_.push_back({c, depth});
      value_depth_ = depth;
      if (c == '{') start_key();
    } else if ((c == ']' || c == '}') && !open_.empty()) {
      open_.pop_back();
      if (!open_.empty()) value_depth_ = open_.back().depth;
    } else if (c == ',' && !open_.empty() && open_.back().kind == '{') {
      start_key();
    }
    return true;
  }

  /// The level keys start from: the top for a header, else the current
  /// inline table or the last [table].
  int key_base() const {
    if (in_header_) return 0;
    return open_.empty() ? table_depth_ : open_.back().depth;
  }
  /// A byte of a key: the first of a dotted part counts a level.
  bool start_segment() {
    if (!need_segment_) return true;
    need_segment_ = false;
    return key_base() + ++segments_ <= kMaxNesting;
  }
  void start_key() {
    in_key_ = need_segment_ = true;
    segments_ = 0;
  }
  void start_line() {
    start_key();
    in_header_ = false;
  }

  TomlCursor cursor_;
  std::vector<Open> open_;  // at most kMaxNesting entries
  bool in_key_ = true;
  bool in_header_ = false;
  bool need_segment_ = true;  // the next key byte starts a dotted part
  int segments_ = 0;          // dotted parts of the key being read
  int table_depth_ = 0;       // dotted parts of the last [table] header
  int value_depth_ = 0;       // the level of the value being read
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// `key` and the value of a line `key = "value"` or `key = 'value'` (with
/// an optional comment), if the line is exactly that and the string has no
/// escapes.
std::optional<std::pair<std::string_view, std::string_view>> plain_assignment(
    std::string_view line) {
  size_t eq = line.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  std::string_view key = trim(line.substr(0, eq));
  std::string_view rest = trim(line.substr(eq + 1));
  if (rest.empty() || (rest[0] != '"' && rest[0] != '\'')) return std::nullopt;
  size_t close = rest.find(rest[0], 1);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view value = rest.substr(1, close - 1);
  if (rest[0] == '"' && value.find('\\') != std::string_view::npos) return std::nullopt;
  std::string_view after = trim(rest.substr(close + 1));
  if (!after.empty() && after[0] != '#') return std::nullopt;
  return std::pair{key, value};
}

}  // namespace

Error config_too_large(const std::string& path, std::optional<uint64_t> size) {
  if (!size) return error(fmt::format("config {} is longer than the limit of 1 MiB", path));
  return error(fmt::format("config {} is {} bytes; the limit is 1 MiB", path, *size));
}

Status check_toml_limits(std::string_view text, const std::string& path) {
  if (text.size() > kMaxConfigBytes) return config_too_large(path, text.size());
  if (auto deep = NestingScanner(text).find_too_deep()) {
    return error(
        fmt::format("{}: nested more than {} levels deep (each table, array, inline "
                    "table and dotted-key part is a level)",
                    deep->where(path), kMaxNesting));
  }
  return {};
}

IdentityLines read_identity_lines(std::string_view text) {
  IdentityLines found;
  TomlCursor cursor(text);
  while (!cursor.done()) {
    cursor.skip_spaces();
    if (cursor.peek() == '[') break;
    if (auto assignment = plain_assignment(cursor.rest_of_line())) {
      auto [key, value] = *assignment;
      if (key == "name" && !found.name) found.name = std::string(value);
      if (key == "control" && !found.control) found.control = std::string(value);
    }
    cursor.skip_statement();  // a multi-line string or array may span lines
  }
  return found;
}

}  // namespace baton

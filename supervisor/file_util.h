// Small file helpers shared by the config reader, the shim checks and the
// metrics file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "result.h"

namespace baton {

/// The whole content of `path`. The error names `what` and the path:
/// "cannot read config /etc/baton/x.toml: No such file or directory".
Result<std::string> read_whole_file(const std::string& path, const std::string& what);

/// The start of a file that may be too long to read whole.
struct FileHead {
  /// The first bytes of the file: all of it, or limit + 1 bytes when it is longer.
  std::string text;
  /// True when `text` is the whole file (it is at most `limit` bytes).
  bool complete = true;
  /// The file's size when it is a regular file; pipes and devices have none.
  std::optional<uint64_t> size;
};

/// Reads `path` up to `limit` + 1 bytes, never more, so a huge file or an
/// endless device costs no more than the limit. Errors as read_whole_file.
Result<FileHead> read_file_head(const std::string& path, const std::string& what, size_t limit);

/// Replaces `path` with `text` whole: written to PATH.tmp, then renamed
/// over it, so a reader sees the old file or the new one, never a part.
/// The error names `what` and the path.
Status replace_file(const std::string& path, const std::string& text, const std::string& what);

}  // namespace baton

// Reading whole files.
#include "file_util.h"

#include <cstdio>

#include <fmt/format.h>

namespace baton {

Result<std::string> read_whole_file(const std::string& path, const std::string& what) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return sys_error(fmt::format("cannot read {} {}", what, path));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return sys_error(fmt::format("cannot read {} {}", what, path));
  return text;
}

}  // namespace baton

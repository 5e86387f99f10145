// Reading whole files, the bounded start of files that may be too long, and
// replacing a file whole.
#include "file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

Result<FileHead> read_file_head(const std::string& path, const std::string& what, size_t limit) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return sys_error(fmt::format("cannot read {} {}", what, path));
  FileHead head;
  char buf[65536];
  size_t n;
  while (head.text.size() <= limit &&
         (n = std::fread(buf, 1, std::min(sizeof buf, limit + 1 - head.text.size()), f)) > 0) {
    head.text.append(buf, n);
  }
  bool failed = std::ferror(f);
  int err = errno;  // before fstat and fclose can change it
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    // A file that grew while it was read is at least as long as what was read.
    head.size = std::max<uint64_t>(static_cast<uint64_t>(st.st_size), head.text.size());
  }
  std::fclose(f);
  if (failed) return sys_error(fmt::format("cannot read {} {}", what, path), err);
  head.complete = head.text.size() <= limit;
  return head;
}

Status replace_file(const std::string& path, const std::string& text, const std::string& what) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error(fmt::format("cannot write {} {}", what, tmp));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error e = sys_error(fmt::format("cannot write {} {}", what, tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    Error e = sys_error(fmt::format("cannot write {} {}", what, tmp));
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = sys_error(fmt::format("cannot rename {} to {} {}", tmp, what, path));
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

}  // namespace baton

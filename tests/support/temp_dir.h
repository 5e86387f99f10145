// TempDir: a directory of its own for each test or benchmark case.
#pragma once

#include <string>

namespace support {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents at destruction.
class TempDir {
 public:
  /// The directory is named PREFIX.XXXXXX. Throws std::runtime_error if it cannot be made.
  explicit TempDir(const std::string& prefix = "baton-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes `text` to `name` in the directory (replacing it) and returns its
  /// path; throws std::runtime_error if it cannot.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

}  // namespace support

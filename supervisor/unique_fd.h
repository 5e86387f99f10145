// UniqueFd: the one owner of a file descriptor. Every fd baton opens is held
// by one of these, so nothing else in the tree calls close().
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace baton {

/// A move-only owning file descriptor. -1 means "owns nothing".
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  /// Gives up ownership; the caller becomes responsible for the fd.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }

  /// Closes the owned fd (if any) and takes `fd`. Preserves errno, so it is
  /// safe to call on an error path before reporting errno.
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  /// The owned descriptor, or -1.
  int fd_ = -1;
};

}  // namespace baton

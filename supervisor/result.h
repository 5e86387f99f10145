// Result<T>: the value of an operation that can fail in an expected way (bad
// config, bind refused, peer gone). The error carries a message a person can
// act on and, where a system call failed, its errno.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace baton {

/// Why an operation failed. `message` is complete ("http: cannot bind
/// 0.0.0.0:80: Permission denied"); `sys_errno` is non-zero when a system call
/// failed, so callers can choose an exit code without parsing text.
struct Error {
  std::string message;
  int sys_errno = 0;
};

/// An Error for the system call that just failed: "`what`: strerror(errno)".
inline Error sys_error(std::string what, int err = errno) {
  return Error{fmt::format("{}: {}", what, std::strerror(err)), err};
}

inline Error error(std::string message) {
  return Error{std::move(message), 0};
}

/// Either a T or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error err) : v_(std::move(err)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// Success or an Error, for operations that produce nothing.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error err) : err_(std::move(err)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool failed_ = false;
};

}  // namespace baton

// Building and reading unix socket addresses.
#include "unix_address.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace baton {
namespace {

constexpr size_t kPathOffset = offsetof(sockaddr_un, sun_path);

Error too_long(std::string_view what, std::string_view shown) {
  return error(fmt::format("{} {} is longer than {} bytes", what, shown, kMaxUnixPath));
}

}  // namespace

Result<UnixAddress> unix_path_address(std::string_view path, std::string_view what) {
  if (path.empty()) return error(fmt::format("{} is empty", what));
  if (path.size() > kMaxUnixPath) return too_long(what, path);
  // The kernel reads a path up to its first NUL: one inside would name
  // another file.
  if (path.find('\0') != std::string_view::npos) {
    return error(fmt::format("{} {} contains a NUL byte", what, path.substr(0, path.find('\0'))));
  }
  UnixAddress a;
  a.addr.sun_family = AF_UNIX;
  std::memcpy(a.addr.sun_path, path.data(), path.size());  // the NUL: zero-initialised
  a.length = static_cast<socklen_t>(kPathOffset + path.size() + 1);
  return a;
}

Result<UnixAddress> unix_abstract_address(std::string_view name, std::string_view what) {
  if (name.size() > kMaxUnixPath) return too_long(what, fmt::format("@{}", name));
  UnixAddress a;
  a.addr.sun_family = AF_UNIX;
  std::memcpy(a.addr.sun_path + 1, name.data(), name.size());  // after the leading NUL
  a.length = static_cast<socklen_t>(kPathOffset + 1 + name.size());
  return a;
}

Result<UnixAddress> unix_address(std::string_view path_or_at_name, std::string_view what) {
  if (path_or_at_name.starts_with('@'))
    return unix_abstract_address(path_or_at_name.substr(1), what);
  return unix_path_address(path_or_at_name, what);
}

UnixName unix_name_of(const sockaddr_un& addr, socklen_t length) {
  size_t n =
      length > kPathOffset ? std::min<size_t>(length - kPathOffset, sizeof addr.sun_path) : 0;
  if (n > 0 && addr.sun_path[0] == '\0') return {std::string(addr.sun_path + 1, n - 1), true};
  return {std::string(addr.sun_path, strnlen(addr.sun_path, n)), false};
}

}  // namespace baton

// UnixAddress: a sockaddr_un for a filesystem path or an abstract name, with
// the exact length bind(2), connect(2) and sendto(2) take, and the way back
// from a sockaddr_un the kernel filled in (getsockname). Every unix socket
// address baton makes is made here.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "result.h"

namespace baton {

/// The longest path (without its terminating NUL) or abstract name (without
/// its leading NUL) a sockaddr_un holds: 107 bytes on Linux.
inline constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;

struct UnixAddress {
  sockaddr_un addr{};
  /// offsetof(sun_path) plus the path and its NUL, or plus the leading NUL
  /// and the name: an abstract name is its bytes exactly, with no NUL
  /// after it, so this length is part of the name.
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

/// The address of the filesystem path `path`, taken as it is (a leading '@'
/// is part of the file name). An error for an empty path, one over
/// kMaxUnixPath bytes ("WHAT PATH is longer than 107 bytes", `what` saying
/// whose path it is) or one with a NUL byte in it.
Result<UnixAddress> unix_path_address(std::string_view path,
                                      std::string_view what = "unix socket path");

/// The address of the abstract name `name` (given without the '@'; any bytes,
/// NUL included). An error for a name over kMaxUnixPath bytes.
Result<UnixAddress> unix_abstract_address(std::string_view name,
                                          std::string_view what = "unix socket name");

/// "@name": the abstract name; anything else: a path (the convention of
/// NOTIFY_SOCKET and of socket URLs).
Result<UnixAddress> unix_address(std::string_view path_or_at_name,
                                 std::string_view what = "unix socket address");

/// What a sockaddr_un of `length` bytes names (as from getsockname or
/// recvfrom): a path (its NUL dropped), or an abstract name. An unnamed
/// socket has an empty path.
struct UnixName {
  std::string path;
  bool abstract = false;
};
UnixName unix_name_of(const sockaddr_un& addr, socklen_t length);

}  // namespace baton

// libFuzzer target: socket URLs and socket names, as written in [[socket]]
// tables and `--listen NAME=URL` flags. The input is split at its first
// '\n': before it the URL, after it the base directory; the whole input is
// also checked as a socket name.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "socket_spec.h"

namespace {

/// What a URL that parsed must satisfy for baton to bind it.
void check_spec(const baton::SocketSpec& spec) {
  if (spec.kind == baton::SocketKind::kUnix) {
    // The path (or abstract name) fits sun_path with its NUL.
    if (spec.path.empty() || spec.path.size() >= sizeof(sockaddr_un{}.sun_path)) __builtin_trap();
  } else if (spec.family != AF_INET && spec.family != AF_INET6) {
    __builtin_trap();
  }
  if (spec.address().empty() || spec.kind_name() == "?") __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view url = input.substr(0, input.find('\n'));
  std::string_view base_dir;
  if (url.size() < input.size()) base_dir = input.substr(url.size() + 1);

  auto spec = baton::parse_socket_url(url, base_dir);
  if (spec.ok()) {
    check_spec(*spec);
  } else if (spec.error().message.empty()) {
    __builtin_trap();
  }
  auto name = baton::check_socket_name(input);
  if (!name.ok() && name.error().message.empty()) __builtin_trap();
  return 0;
}

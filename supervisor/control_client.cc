// The blocking control client, and the checks both sides share.
#include "control_client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

namespace baton {

Result<UnixAddress> control_address(const std::string& path) {
  return unix_path_address(path, "control socket path");
}

std::string directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

/// Whether the control socket's directory can be trusted. Whoever can
/// write to it can unlink baton's socket and bind their own in its place:
/// `baton stop` would then report success to them while baton runs on. So
/// the directory must be a real directory (lstat: not a symbolic link,
/// which its owner could repoint), owned by us (the effective uid) or by
/// root, and writable by neither group nor other, sticky bit or not: a
/// sticky /tmp-like directory still lets others create the socket before
/// baton does. Its ancestors are taken on trust, like the directories of
/// any path one is given. A missing directory is ENOENT, for the caller.
Status check_control_directory(const std::string& dir) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return sys_error(fmt::format("cannot inspect the control socket directory {}", dir));
  }
  constexpr const char* kAdvice =
      "refusing to use it (remove it, or set XDG_RUNTIME_DIR or `control`)";
  if (S_ISLNK(st.st_mode)) {
    return Error{fmt::format("control socket directory {} is a symbolic link: {}", dir, kAdvice),
                 EPERM};
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error{fmt::format("control socket directory {} is not a directory: {}", dir, kAdvice),
                 ENOTDIR};
  }
  bool owner_ok = st.st_uid == geteuid() || st.st_uid == 0;
  if (!owner_ok || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{fmt::format("control socket directory {} is owned by uid {} and mode {:04o}: {}",
                             dir, st.st_uid, st.st_mode & 07777, kAdvice),
                 EPERM};
  }
  return {};
}

/// Connects a blocking stream socket to `path`; errors keep their errno.
Result<UniqueFd> connect_unix(const std::string& path) {
  auto addr = control_address(path);
  if (!addr) return addr.error();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error("cannot create a socket");
  if (connect(fd.get(), addr->get(), addr->length) != 0) {
    return sys_error(fmt::format("cannot reach baton at {}", path));
  }
  return fd;
}

Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       const std::function<void(const nlohmann::json&)>& on_event) {
  // Checked before connecting: a socket in a directory others can write to
  // may be anyone's, and must not be told "stop" (nor believed about it).
  if (Status s = check_control_directory(directory_of(path)); !s && s.error().sys_errno != ENOENT) {
    return s.error();
  }
  auto fd = connect_unix(path);
  if (!fd) {
    Error e = fd.error();
    if (e.sys_errno == ENOENT || e.sys_errno == ECONNREFUSED) e.message += " (is baton running?)";
    return e;
  }
  std::string line = request.dump() + "\n";
  std::optional<Error> send_failed;
  if (send(fd->get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    send_failed = sys_error(fmt::format("cannot send the request to baton at {}", path));
    // A baton that refuses the connection at once (too many connections,
    // out of fds) may have replied and closed before the request was sent:
    // its reply is still there to read.
    if (send_failed->sys_errno != EPIPE && send_failed->sys_errno != ECONNRESET)
      return *send_failed;
  }
  std::string input;
  char buf[4096];
  for (;;) {
    size_t nl;
    while ((nl = input.find('\n')) != std::string::npos) {
      auto message = nlohmann::json::parse(input.substr(0, nl), nullptr, false);
      input.erase(0, nl + 1);
      if (message.is_discarded() || !message.is_object()) {
        return error(fmt::format("baton at {} sent a malformed reply", path));
      }
      if (message.contains("ok")) return message;
      on_event(message);
    }
    ssize_t n = recv(fd->get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 && send_failed) return *send_failed;
    if (n < 0) return sys_error(fmt::format("lost the connection to baton at {}", path));
    if (n == 0)
      return error(fmt::format("baton at {} closed the connection without a reply", path));
    input.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace baton

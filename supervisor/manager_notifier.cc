// Sending sd_notify messages without blocking.
#include "manager_notifier.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace baton {
namespace {

/// A manager that reads nothing for this long a queue is not coming back.
constexpr size_t kMaxPending = 256;

/// Connects a datagram socket to NOTIFY_SOCKET ("/path" or "@abstract").
UniqueFd connect_notify_socket(const char* path) {
  size_t len = std::strlen(path);
  sockaddr_un addr{};
  if (len == 0 || len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) {
    return UniqueFd();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '/'));
  if (fd.valid() && connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), size) != 0) {
    spdlog::warn("NOTIFY_SOCKET={}: cannot connect: {}", path, std::strerror(errno));
    fd.reset();
  }
  return fd;
}

}  // namespace

ManagerNotifier::ManagerNotifier(uv_loop_t* loop) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path) return;
  fd_ = connect_notify_socket(path);
  if (!fd_.valid()) return;
  uv_poll_init(loop, &poll_, fd_.get());
  poll_.data = this;
  polling_ = true;
}

ManagerNotifier::~ManagerNotifier() = default;

void ManagerNotifier::notify(const std::string& message) {
  if (!fd_.valid() || closed_) return;
  if (pending_.size() >= kMaxPending) pending_.pop_front();
  pending_.push_back(message);
  flush();
}

void ManagerNotifier::flush() {
  while (!pending_.empty()) {
    const std::string& m = pending_.front();
    if (send(fd_.get(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      if (errno == EAGAIN) break;
      spdlog::debug("NOTIFY_SOCKET: dropped \"{}\": {}", m, std::strerror(errno));
    }
    pending_.pop_front();
  }
  if (pending_.empty()) {
    uv_poll_stop(&poll_);
  } else {
    uv_poll_start(&poll_, UV_WRITABLE, &ManagerNotifier::on_writable);
  }
}

void ManagerNotifier::on_writable(uv_poll_t* handle, int, int) noexcept {
  static_cast<ManagerNotifier*>(handle->data)->flush();
}

void ManagerNotifier::close() {
  closed_ = true;
  pending_.clear();
  if (polling_) uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  polling_ = false;
}

}  // namespace baton

// Sending sd_notify messages without blocking.
#include "manager_notifier.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "unix_address.h"

namespace baton {
namespace {

/// A manager that reads nothing for this long a queue is not coming back.
constexpr size_t kMaxPending = 256;

/// Connects a datagram socket to NOTIFY_SOCKET ("/path" or "@abstract").
UniqueFd connect_notify_socket(const char* path) {
  // As sd_notify: an absolute path or an abstract name; anything else is ignored.
  auto addr = unix_address(path);
  if ((path[0] != '/' && path[0] != '@') || !addr) return UniqueFd();
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.valid() && connect(fd.get(), addr->get(), addr->length) != 0) {
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
  start_watchdog(loop);
}

void ManagerNotifier::start_watchdog(uv_loop_t* loop) {
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (!usec || (pid && std::strtol(pid, nullptr, 10) != getpid())) return;
  watchdog_usec_ = std::strtoull(usec, nullptr, 10);
  if (watchdog_usec_ == 0) return;
  uv_timer_init(loop, &watchdog_);
  watchdog_.data = this;
  watchdog_running_ = true;
  uint64_t every_ms = std::max<uint64_t>(1, watchdog_usec_ / 2000);
  uv_timer_start(
      &watchdog_,
      [](uv_timer_t* t) noexcept { static_cast<ManagerNotifier*>(t->data)->notify("WATCHDOG=1"); },
      every_ms, every_ms);
}

ManagerNotifier::~ManagerNotifier() = default;

void ManagerNotifier::notify(const std::string& message) {
  if (!connected()) return;
  if (pending_.size() >= kMaxPending) pending_.pop_front();
  pending_.push_back(Pending{message, UniqueFd()});
  flush();
}

void ManagerNotifier::notify_with_fd(const std::string& message, int fd) {
  if (!connected()) return;
  UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!copy.valid()) {
    spdlog::warn("NOTIFY_SOCKET: cannot copy fd {} for \"{}\": {}", fd, message, strerror(errno));
    return;
  }
  pending_.push_back(Pending{message, std::move(copy)});
  flush();
}

namespace {

/// Sends one datagram, with an fd attached when `fd` >= 0.
ssize_t send_message(int sock, const std::string& m, int fd) {
  iovec iov{const_cast<char*>(m.data()), m.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

void ManagerNotifier::flush() {
  while (!pending_.empty()) {
    const Pending& p = pending_.front();
    if (send_message(fd_.get(), p.message, p.fd.valid() ? p.fd.get() : -1) < 0) {
      if (errno == EAGAIN) break;
      spdlog::debug("NOTIFY_SOCKET: dropped \"{}\": {}", p.message, std::strerror(errno));
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
  if (watchdog_running_) uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
  watchdog_running_ = false;
  if (polling_) uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  polling_ = false;
}

}  // namespace baton

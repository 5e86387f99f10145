// NotifyListener (notify_listener.h).
#include "support/notify_listener.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

namespace support {

NotifyListener::NotifyListener() {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::random_device rd;
  std::string name = fmt::format("baton-test/{}/{:08x}", getpid(), rd());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (fd_ >= 0) close(fd_);
    throw std::runtime_error("cannot bind the test's notify socket");
  }
  env_ = "@" + name;
}

NotifyListener::~NotifyListener() {
  close(fd_);
  drop_fds();
}

void NotifyListener::drop_fds() {
  for (const auto& entry : fds_) close(entry.second);
  fds_.clear();
}

std::optional<std::string> NotifyListener::next(Millis timeout) {
  if (wait_fd(fd_, POLLIN, Clock::now() + timeout) <= 0) return std::nullopt;
  char buf[4097];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return std::nullopt;
  // Keep the fds that came with it (FDSTORE=1): the test may use them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds_.emplace_back(history_.size(), fd);
    }
  }
  history_.emplace_back(buf, static_cast<size_t>(n));
  return history_.back();
}

int NotifyListener::fd_of(const std::string& text) const {
  for (const auto& [index, fd] : fds_) {
    if (history_[index] == text) return fd;
  }
  return -1;
}

bool NotifyListener::wait_for(const std::function<bool(const std::string&)>& match,
                              Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (auto msg = next(Millis(remaining_ms(deadline)))) {
    if (match(*msg)) return true;
  }
  return false;
}

}  // namespace support

// Receiving sd_notify datagrams with their credentials.
#include "notify_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unix_address.h"

namespace baton {
namespace {

/// sd_notify datagrams are at most this long (systemd's limit).
constexpr size_t kMaxDatagram = 4096;
/// Room for credentials plus the most fds one message can carry (SCM_MAX_FD).
/// Fds that do not fit are discarded by the kernel (MSG_CTRUNC).
constexpr size_t kControlSize = CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 253);

struct Received {
  std::string text;
  pid_t pid = 0;
  bool truncated = false;
};

/// Reads the credentials out of a message and closes every fd it carried.
pid_t take_control(msghdr& msg) {
  pid_t pid = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      pid = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        UniqueFd closer(fd);
      }
    }
  }
  return pid;
}

}  // namespace

Result<std::unique_ptr<NotifyServer>> NotifyServer::open(uv_loop_t* loop, std::string address,
                                                         Handler handler) {
  std::unique_ptr<NotifyServer> server(new NotifyServer());
  server->fd_.reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!server->fd_.valid()) return sys_error("cannot create the notify socket");
  int one = 1;
  if (setsockopt(server->fd_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    return sys_error("cannot set SO_PASSCRED on the notify socket");
  }
  bool abstract = address.starts_with('@');
  auto addr = abstract ? unix_abstract_address(address.substr(1), "notify socket name")
                       : unix_path_address(address, "notify socket path");
  if (!addr) return addr.error();
  if (!abstract) {
    // Beside the control socket, which only one baton can hold: a file
    // here is a stale one of this service's.
    struct stat st;
    if (lstat(address.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return error(fmt::format("notify socket {} exists and is not a socket", address));
      }
      unlink(address.c_str());
    }
  }
  if (bind(server->fd_.get(), addr->get(), addr->length) != 0) {
    return sys_error(fmt::format("cannot bind the notify socket {}", address));
  }
  if (!abstract) {
    server->path_ = address;
    if (chmod(address.c_str(), 0666) != 0) {
      Error e = sys_error(fmt::format("cannot make the notify socket {} writable", address));
      unlink(address.c_str());
      return e;
    }
  }
  server->socket_env_ = std::move(address);
  server->handler_ = std::move(handler);
  if (int rc = uv_poll_init(loop, &server->poll_, server->fd_.get()); rc != 0) {
    return sys_error("cannot poll the notify socket", -rc);
  }
  server->poll_.data = server.get();
  server->polling_ = true;
  uv_poll_start(&server->poll_, UV_READABLE, &NotifyServer::on_poll);
  return server;
}

NotifyServer::~NotifyServer() = default;

void NotifyServer::close() {
  if (!path_.empty()) unlink(path_.c_str());
  path_.clear();
  if (!polling_) return;
  polling_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
}

void NotifyServer::on_poll(uv_poll_t* handle, int status, int) noexcept {
  auto* self = static_cast<NotifyServer*>(handle->data);
  if (status < 0) {
    spdlog::error("notify socket: poll failed: {}", uv_strerror(status));
    return;
  }
  self->receive_all();
}

void NotifyServer::receive_all() noexcept {
  // One extra byte tells an over-long datagram (MSG_TRUNC) from a full one.
  char data[kMaxDatagram + 1];
  alignas(cmsghdr) char control[kControlSize];
  for (int budget = 64; budget > 0; --budget) {
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) spdlog::warn("notify socket: {}", strerror(errno));
      return;
    }
    pid_t pid = take_control(msg);
    if (static_cast<size_t>(n) > kMaxDatagram) {
      if (auto more = dropped_.allow()) {
        spdlog::info("notify: ignored a {}-byte datagram from pid {} (limit {}){}", n, pid,
                     kMaxDatagram, *more);
      }
      continue;
    }
    if (pid <= 0) {
      if (auto more = dropped_.allow()) {
        spdlog::info("notify: ignored a datagram without sender credentials{}", *more);
      }
      continue;
    }
    handler_(pid, parse_notify_message(std::string_view(data, static_cast<size_t>(n))));
  }
}

}  // namespace baton

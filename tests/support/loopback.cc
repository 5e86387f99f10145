// Loopback clients (loopback.h).
#include "support/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

#include "supervisor/sock_diag.h"

namespace support {
namespace {

Response failure(const std::string& what, int err) {
  Response r;
  r.error = fmt::format("{}: {}", what, err == EAGAIN ? "timeout" : std::strerror(err));
  return r;
}

/// A socket of `type` to `address`, connected, with send and receive
/// timeouts; -1 with `why` set if not.
int connect_socket(const std::string& address, int type, Millis timeout, Response& why) {
  auto parsed = parse_endpoint(address);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    why.error = *error;
    return -1;
  }
  const Endpoint& ep = std::get<Endpoint>(parsed);
  int fd = socket(ep.addr.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = failure("socket", errno);
    return -1;
  }
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0) {
    why = failure("connect", errno);
    close(fd);
    return -1;
  }
  return fd;
}

Response parse_http(const std::string& raw) {
  Response r;
  size_t head_end = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.") || head_end == std::string::npos) {
    r.error = fmt::format("invalid response: \"{}\"", raw.substr(0, 80));
    return r;
  }
  r.status = std::atoi(raw.c_str() + 9);
  r.body = raw.substr(head_end + 4);
  r.ok = true;
  return r;
}

}  // namespace

int connect_stream(const std::string& address, Millis timeout) {
  Response ignored;
  return connect_socket(address, SOCK_STREAM, timeout, ignored);
}

bool send_get(int fd, const std::string& path) {
  const std::string request =
      fmt::format("GET {} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path);
  return send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(request.size());
}

Response read_response(int fd, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string raw;
  Response r;
  for (;;) {
    const int ready = wait_fd(fd, POLLIN, deadline);
    if (ready <= 0) {
      r = failure("recv", ready == 0 ? EAGAIN : errno);
      break;
    }
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      r = parse_http(raw);
      break;
    } else if (errno != EINTR) {
      r = failure("recv", errno);
      break;
    }
  }
  close(fd);
  r.text = std::move(raw);
  return r;
}

Response http_get_on(int fd, const std::string& path, Millis timeout) {
  if (!send_get(fd, path)) {
    Response r = failure("send", errno);
    close(fd);
    return r;
  }
  return read_response(fd, timeout);
}

Response http_get(const std::string& address, const std::string& path, Millis timeout) {
  Response r;
  const int fd = connect_socket(address, SOCK_STREAM, timeout, r);
  if (fd < 0) return r;
  return http_get_on(fd, path, timeout);
}

Response udp_request(const std::string& address, const std::string& payload, Millis timeout) {
  Response r;
  const int fd = connect_socket(address, SOCK_DGRAM, timeout, r);
  if (fd < 0) return r;
  if (send(fd, payload.data(), payload.size(), 0) < 0) {
    r = failure("send", errno);
  } else {
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      r = failure("recv", errno);
    } else {
      r.ok = true;
      r.text.assign(buf, static_cast<size_t>(n));
      r.body = r.text;
    }
  }
  close(fd);
  return r;
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  if (fd >= 0) close(fd);
  if (!ok) {
    throw std::runtime_error(
        fmt::format("cannot pick a free port on 127.0.0.1: {}", std::strerror(err)));
  }
  return ntohs(addr.sin_port);
}

std::vector<TcpSocket> loopback_tcp_sockets(uint32_t states) {
  std::vector<TcpSocket> found;
  baton::for_each_inet_socket(AF_INET, IPPROTO_TCP, states, [&](const inet_diag_msg& m) {
    if (m.id.idiag_src[0] != htonl(INADDR_LOOPBACK)) return;
    found.push_back({static_cast<ino_t>(m.idiag_inode), ntohs(m.id.idiag_sport),
                     ntohs(m.id.idiag_dport), static_cast<int>(m.idiag_rqueue),
                     static_cast<int>(m.idiag_wqueue)});
  });
  return found;
}

std::vector<TcpListener> tcp_listeners(int port) {
  std::vector<TcpListener> found;
  for (const TcpSocket& s : loopback_tcp_sockets(1U << TCP_LISTEN)) {
    if (s.local_port == port) found.push_back({s.inode, s.receive_queue});
  }
  return found;
}

}  // namespace support

// Loopback clients for the tests, the load client and the benchmarks:
// addresses (loopback only), one HTTP GET, one UDP request, a free port, and
// the kernel's view of the TCP listeners on a port.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <variant>
#include <vector>

#include "endpoint.h"
#include "support/wait.h"

namespace support {

// The load client's loopback addresses ("127.0.0.1:80", "[::1]:80",
// "localhost:80", a unix socket path or "@name"; anything else refused).
using load::Endpoint;
using load::parse_endpoint;

/// What one request got back.
struct Response {
  bool ok = false;    // a whole HTTP response (UDP: a datagram) arrived
  std::string error;  // why not: "connect: Connection refused", "recv: timeout", ...
  int status = 0;     // the HTTP status code
  std::string text;   // everything received
  std::string body;   // what follows the response head (UDP: the datagram)
};

/// Connects a stream socket to `address` (see parse_endpoint), with send and
/// receive timeouts of `timeout`; -1 on failure.
int connect_stream(const std::string& address, Millis timeout = 5s);
/// Sends a GET for `path` (HTTP/1.1, Connection: close) on a connected
/// socket; false if it could not be sent whole.
bool send_get(int fd, const std::string& path = "/");
/// Reads the response on `fd` until the server closes the connection, for
/// at most `timeout`, and closes `fd`.
Response read_response(int fd, Millis timeout = 15s);
/// send_get, then read_response, on an already connected socket.
Response http_get_on(int fd, const std::string& path = "/", Millis timeout = 15s);
/// Connects to `address` and GETs `path`, each step bounded by `timeout`.
Response http_get(const std::string& address, const std::string& path = "/", Millis timeout = 5s);
/// Sends one datagram to a UDP address and returns the reply as the body.
Response udp_request(const std::string& address, const std::string& payload, Millis timeout = 5s);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read,
/// closed), for programs that must be told their port before they start.
/// Throws std::runtime_error if it cannot bind.
int free_port();

/// An IPv4 TCP socket on 127.0.0.1 as sock_diag reports it (not
/// /proc/net/tcp, which formats every TIME_WAIT socket the load tests
/// leave: seconds per read with tens of thousands of them).
struct TcpSocket {
  ino_t inode = 0;
  int local_port = 0;
  int remote_port = 0;
  /// A listener's accept queue (connections waiting to be accepted), else
  /// the bytes not yet read.
  int receive_queue = 0;
  /// A listener's backlog, else the bytes not yet acknowledged.
  int send_queue = 0;
};
/// The IPv4 TCP sockets with local address 127.0.0.1 in the TCP `states`
/// (a bit per state, e.g. 1 << TCP_LISTEN); empty if sock_diag cannot be
/// asked.
std::vector<TcpSocket> loopback_tcp_sockets(uint32_t states);

/// A listening TCP socket on 127.0.0.1.
struct TcpListener {
  ino_t inode = 0;
  int accept_queue = 0;  // connections waiting to be accepted
};
/// The listening TCP sockets on 127.0.0.1:port.
std::vector<TcpListener> tcp_listeners(int port);

}  // namespace support

/* legacy: a server that knows nothing of baton. It creates and binds its own
 * socket (--host, default 127.0.0.1; --port), listens, and answers one
 * HTTP/1.0-style request per connection with a blocking accept loop, single
 * threaded, no signal handlers: SIGTERM ends it at once. Run under
 * `baton run --shim` it is handed baton's socket instead of its own (the
 * shim makes its bind() take the inherited socket) and is drained without a
 * code change: in-flight requests finish before SIGTERM takes effect.
 *
 * Response body: "legacy pid P version V\n" (V from $LEGACY_VERSION, default
 * 1). `GET /slow?ms=N` answers after N ms. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
  fprintf(stderr, "usage: legacy --port N [--host ADDRESS]\n");
  exit(100);
}

/* Fills `addr` from a numeric IPv4 or IPv6 host; returns its length or 0. */
static socklen_t make_address(const char* host, int port, struct sockaddr_storage* addr) {
  memset(addr, 0, sizeof *addr);
  struct sockaddr_in* in = (struct sockaddr_in*)addr;
  struct sockaddr_in6* in6 = (struct sockaddr_in6*)addr;
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    return sizeof *in;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    return sizeof *in6;
  }
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

/* Reads the request head (up to the blank line) and answers it. */
static void serve(int conn, const char* version) {
  char request[4096];
  size_t used = 0;
  while (used < sizeof request - 1) {
    ssize_t n = recv(conn, request + used, sizeof request - 1 - used, 0);
    if (n <= 0) return;
    used += (size_t)n;
    request[used] = '\0';
    if (strstr(request, "\r\n\r\n")) break;
  }
  const char* slow = strstr(request, "GET /slow?ms=");
  if (slow == request) sleep_ms(atol(slow + strlen("GET /slow?ms=")));
  char body[128], response[512];
  int body_len = snprintf(body, sizeof body, "legacy pid %d version %s\n", (int)getpid(), version);
  int len = snprintf(response, sizeof response,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                     body_len, body);
  for (int off = 0; off < len;) {
    ssize_t n = send(conn, response + off, (size_t)(len - off), MSG_NOSIGNAL);
    if (n <= 0) return;
    off += (int)n;
  }
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = -1;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      host = argv[++i];
    else
      usage();
  }
  struct sockaddr_storage addr;
  socklen_t addr_len = make_address(host, port, &addr);
  if (port < 0 || port > 65535 || addr_len == 0) usage();
  const char* version = getenv("LEGACY_VERSION");
  if (!version || !*version) version = "1";

  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    fprintf(stderr, "legacy: fatal: unable to create a socket: %s\n", strerror(errno));
    return 111;
  }
  if (bind(fd, (struct sockaddr*)&addr, addr_len) != 0) {
    fprintf(stderr, "legacy: fatal: unable to bind %s port %d: %s\n", host, port, strerror(errno));
    return 1;
  }
  if (listen(fd, 128) != 0) {
    fprintf(stderr, "legacy: fatal: unable to listen: %s\n", strerror(errno));
    return 111;
  }
  fprintf(stderr, "legacy: pid %d serving %s port %d, version %s\n", (int)getpid(), host, port,
          version);
  for (;;) {
    int conn = accept(fd, NULL, NULL);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      fprintf(stderr, "legacy: fatal: accept: %s\n", strerror(errno));
      return 111;
    }
    serve(conn, version);
    close(conn);
  }
}

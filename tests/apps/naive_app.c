/* naive_app: a stand-in for a service that restarts the naive way, for
 * `baton verify`'s tests. It ignores the sockets baton passes (LISTEN_FDS)
 * and binds its own port, 127.0.0.1:$NAIVE_PORT, with SO_REUSEADDR only.
 * It says READY=1 as soon as it starts, then waits for the port to be free
 * (the old generation holds it until SIGTERM), binds, and starts listening
 * only $NAIVE_LISTEN_DELAY_MS (default 200) later, as an app that does its
 * set-up between bind() and listen() would: all that time, and from the old
 * generation's exit to the new one's bind, connections are refused. On
 * SIGTERM it dies at once (the default action), resetting what its accept
 * queue held. Each request gets "naive pid P" and Connection: close. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long env_number(const char* name, long fallback) {
  const char* value = getenv(name);
  return value != NULL && *value != '\0' ? strtol(value, NULL, 10) : fallback;
}

/* Binds 127.0.0.1:port, retrying every 10ms for up to 30s while the port is
 * in use; the socket, or -1. */
static int bind_port(int port) {
  for (int attempt = 0; attempt < 3000; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return -1;
    if (bind(fd, (struct sockaddr*)&addr, sizeof addr) == 0) return fd;
    int err = errno;
    close(fd);
    if (err != EADDRINUSE) return -1;
    sleep_ms(10);
  }
  return -1;
}

/* Reads the request head (or gives up at EOF or 8 KiB) and answers it. */
static void serve(int conn) {
  char buf[8192];
  size_t used = 0;
  while (used < sizeof buf - 1) {
    ssize_t n = recv(conn, buf + used, sizeof buf - 1 - used, 0);
    if (n <= 0) return;
    used += (size_t)n;
    buf[used] = '\0';
    if (strstr(buf, "\r\n\r\n") != NULL) break;
  }
  char body[64], response[256];
  int body_len = snprintf(body, sizeof body, "naive pid %d\n", (int)getpid());
  int len = snprintf(response, sizeof response,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                     body_len, body);
  (void)send(conn, response, (size_t)len, MSG_NOSIGNAL);
}

int main(void) {
  long port = env_number("NAIVE_PORT", 0);
  if (port <= 0 || port > 65535) {
    fputs("naive_app: NAIVE_PORT must be a port number\n", stderr);
    return 2;
  }
  sd_notify(0, "READY=1\nSTATUS=said ready before binding");
  int fd = bind_port((int)port);
  if (fd < 0) {
    perror("naive_app: bind");
    return 1;
  }
  sleep_ms(env_number("NAIVE_LISTEN_DELAY_MS", 200));
  if (listen(fd, 128) != 0) {
    perror("naive_app: listen");
    return 1;
  }
  for (;;) {
    int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) continue;
    serve(conn);
    close(conn);
  }
}

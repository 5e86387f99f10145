/* threaded_app: a test server with a pool of threads that all accept on the
 * one socket it binds to --port (127.0.0.1), knowing nothing of baton. The
 * workers block every signal (a common pattern); the main thread waits in
 * pause() and SIGTERM ends the process (no handler). --nonblocking: a
 * SOCK_NONBLOCK socket, each worker polls it and accepts until EAGAIN.
 * Body: "threaded pid P version 1\n"; `GET /slow?ms=N` answers after N ms. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listener;
static int nonblocking;

static void serve(int conn) {
  char request[2048];
  size_t used = 0;
  while (used < sizeof request - 1) {
    ssize_t n = recv(conn, request + used, sizeof request - 1 - used, 0);
    if (n <= 0) break;
    used += (size_t)n;
    request[used] = '\0';
    if (strstr(request, "\r\n\r\n")) break;
  }
  request[used] = '\0';
  if (strncmp(request, "GET /slow?ms=", 13) == 0) {
    long ms = atol(request + 13);
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
  }
  char body[64], response[256];
  int body_len = snprintf(body, sizeof body, "threaded pid %d version 1\n", (int)getpid());
  int len = snprintf(response, sizeof response,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                     body_len, body);
  send(conn, response, (size_t)len, MSG_NOSIGNAL);
  close(conn);
}

static void* worker(void* unused) {
  (void)unused;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  for (;;) {
    if (nonblocking) {
      struct pollfd p = {.fd = listener, .events = POLLIN};
      poll(&p, 1, -1);
    }
    int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (conn >= 0) {
      serve(conn);
    } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      perror("threaded_app: accept4");
      exit(111);
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int port = -1;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    if (strcmp(argv[i], "--nonblocking") == 0) nonblocking = 1;
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "usage: threaded_app --port N [--nonblocking]\n");
    return 100;
  }
  listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listener, 128) != 0) {
    fprintf(stderr, "threaded_app: fatal: unable to bind 127.0.0.1 port %d: %s\n", port,
            strerror(errno));
    return 1;
  }
  pthread_t threads[8];
  for (int i = 0; i < 8; ++i) pthread_create(&threads[i], NULL, worker, NULL);
  for (;;) pause();
}

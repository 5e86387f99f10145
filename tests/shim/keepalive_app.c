/* keepalive_app: a test server with HTTP/1.1 keep-alive and a graceful
 * SIGTERM handler of its own, knowing nothing of baton: its own
 * SOCK_NONBLOCK socket bound to --port (127.0.0.1), one thread, poll().
 * Connections stay open between requests (pipelined requests are answered
 * in order). The SIGTERM handler (sigaction) sets a flag and wakes poll()
 * through a pipe; the loop then
 * closes its listening socket, answers every request it has or gets with
 * "Connection: close" and closes after it, closes connections that stay
 * silent for --grace-ms (default 200: a keep-alive client may be sending its
 * next request at that moment), and exits 0 once none is left. It never
 * closes idle connections before that signal, so under the shim it drains
 * only if the signal reaches it while connections are open. It writes
 * "keepalive_app: pid P stopping on SIGTERM, N connections open" to stderr
 * when it sees the signal. Body: "keepalive pid P version V\n" (V from
 * $LEGACY_VERSION, default 1). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024

struct conn {
  int fd;
  char in[4096];
  size_t used;
};

static struct conn conns[MAX_CONNS];
static int nconns;
static volatile sig_atomic_t stop;
static int wake[2] = {-1, -1}; /* the handler writes, poll() wakes: no lost signal */
static char body[128];
static int body_len;

static void on_sigterm(int sig) {
  (void)sig;
  int saved = errno;
  stop = 1;
  (void)!write(wake[1], "x", 1);
  errno = saved;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drop(int i) {
  close(conns[i].fd);
  conns[i] = conns[--nconns];
}

/* Sends all of `text` on a non-blocking socket; 0 on success. */
static int send_all(int fd, const char* text, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 1000) <= 0) return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/* Answers the complete requests buffered on connection i; 0 to keep it. */
static int answer(int i) {
  struct conn* c = &conns[i];
  for (;;) {
    c->in[c->used] = '\0';
    char* end = strstr(c->in, "\r\n\r\n");
    if (!end) return c->used == sizeof c->in - 1 ? -1 : 0;
    int keep = !stop && strstr(c->in, "Connection: close") == NULL;
    char head[256];
    int len = snprintf(head, sizeof head,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                       "Connection: %s\r\n\r\n",
                       body_len, keep ? "keep-alive" : "close");
    char out[512];
    memcpy(out, head, (size_t)len);
    memcpy(out + len, body, (size_t)body_len);
    if (send_all(c->fd, out, (size_t)(len + body_len)) != 0 || !keep) return -1;
    size_t taken = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + taken, c->used - taken);
    c->used -= taken;
  }
}

/* Reads what connection i has; 0 to keep it. */
static int on_readable(int i) {
  struct conn* c = &conns[i];
  for (;;) {
    ssize_t n = recv(c->fd, c->in + c->used, sizeof c->in - 1 - c->used, 0);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? answer(i) : -1;
    c->used += (size_t)n;
    if (c->used == sizeof c->in - 1) return answer(i);
  }
}

static void accept_all(int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("keepalive_app: accept4");
      return;
    }
    if (nconns == MAX_CONNS) {
      close(fd);
      continue;
    }
    conns[nconns].fd = fd;
    conns[nconns].used = 0;
    ++nconns;
  }
}

int main(int argc, char** argv) {
  int port = -1;
  long grace_ms = 200;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc)
      grace_ms = atol(argv[++i]);
  }
  if (port < 0 || port > 65535 || grace_ms < 0) {
    fprintf(stderr, "usage: keepalive_app --port N [--grace-ms MS]\n");
    return 100;
  }
  const char* version = getenv("LEGACY_VERSION");
  if (!version || !*version) version = "1";
  body_len = snprintf(body, sizeof body, "keepalive pid %d version %s\n", (int)getpid(), version);
  if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    perror("keepalive_app: pipe2");
    return 111;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigterm;
  sigaction(SIGTERM, &sa, NULL);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0) {
    fprintf(stderr, "keepalive_app: fatal: unable to bind 127.0.0.1 port %d: %s\n", port,
            strerror(errno));
    return 1;
  }
  if (listen(listener, 128) != 0) {
    fprintf(stderr, "keepalive_app: fatal: unable to listen: %s\n", strerror(errno));
    return 111;
  }
  fprintf(stderr, "keepalive_app: pid %d serving 127.0.0.1 port %d\n", (int)getpid(), port);
  long long quiet_since = 0; /* while stopping: the last time any connection spoke */
  static struct pollfd fds[MAX_CONNS + 2];
  for (;;) {
    if (stop && listener >= 0) {
      fprintf(stderr, "keepalive_app: pid %d stopping on SIGTERM, %d connections open\n",
              (int)getpid(), nconns);
      close(listener);
      listener = -1;
      quiet_since = now_ms();
      for (int i = nconns - 1; i >= 0; --i) {
        if (answer(i) != 0) drop(i);
      }
    }
    if (stop && nconns == 0) break;
    int timeout = -1;
    if (stop) {
      long long left = quiet_since + grace_ms - now_ms();
      if (left <= 0) {
        while (nconns > 0) drop(nconns - 1);
        break;
      }
      timeout = (int)left;
    }
    int n = 0;
    for (int i = 0; i < nconns; ++i)
      fds[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
    if (listener >= 0) fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
    if (!stop) fds[n++] = (struct pollfd){.fd = wake[0], .events = POLLIN};
    int ready = poll(fds, (nfds_t)n, timeout);
    if (ready <= 0) continue; /* EINTR (the signal), or the grace is checked again */
    int listener_ready = listener >= 0 && fds[nconns].revents != 0;
    for (int i = nconns - 1; i >= 0; --i) {
      if (fds[i].revents == 0) continue;
      if (stop) quiet_since = now_ms();
      if (on_readable(i) != 0) drop(i);
    }
    if (listener_ready && !stop) accept_all(listener);
  }
  fprintf(stderr, "keepalive_app: pid %d exiting\n", (int)getpid());
  return 0;
}

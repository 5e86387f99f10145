/* epoll_app: a test server in the event-loop style, knowing nothing of baton:
 * its own SOCK_NONBLOCK socket bound to --port (127.0.0.1), epoll, accept4 in
 * a loop until EAGAIN, one request per connection. Its SIGTERM handler
 * (sigaction; SIGTERM is unblocked only inside epoll_pwait) only sets a
 * flag; the loop then stops accepting (it closes
 * its listening socket), answers the requests it has, and exits 0. It
 * writes "epoll_app: pid P stopping on SIGTERM, N connections open" to
 * stderr when it sees the flag. With --oneshot the handler is instead the
 * "clean up, then die by the signal" kind (SA_RESETHAND, raise again): the
 * process ends on SIGTERM at once, whatever it is doing. Body: "epoll pid P
 * version V\n" (V from $LEGACY_VERSION, default 1); `GET /slow?ms=N`
 * answers after N ms without blocking the loop. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096

struct conn {
  int open;
  char request[2048];
  size_t used;
  long long due_ms; /* answer at this time; 0 while the request is incomplete */
};

static struct conn conns[MAX_CONNS];
static volatile sig_atomic_t stop;
static const char* version;

static void on_sigterm(int sig) {
  (void)sig;
  stop = 1;
}

static void on_sigterm_oneshot(int sig) {
  raise(sig); /* SA_RESETHAND: the default action, once this handler returns */
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void finish(int epfd, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  conns[fd].open = 0;
}

static void respond(int epfd, int fd) {
  char body[128], response[512];
  int body_len = snprintf(body, sizeof body, "epoll pid %d version %s\n", (int)getpid(), version);
  int len = snprintf(response, sizeof response,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                     body_len, body);
  for (int off = 0; off < len;) {
    ssize_t n = send(fd, response + off, (size_t)(len - off), MSG_NOSIGNAL);
    if (n > 0) {
      off += (int)n;
    } else if (n < 0 && errno == EAGAIN) {
      struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
    } else {
      break;
    }
  }
  finish(epfd, fd);
}

static void on_readable(int epfd, int fd) {
  struct conn* c = &conns[fd];
  for (;;) {
    ssize_t n = recv(fd, c->request + c->used, sizeof c->request - 1 - c->used, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return finish(epfd, fd);
    if (n < 0) return;
    c->used += (size_t)n;
    c->request[c->used] = '\0';
    if (!strstr(c->request, "\r\n\r\n")) {
      if (c->used == sizeof c->request - 1) finish(epfd, fd);
      return;
    }
    long delay = strncmp(c->request, "GET /slow?ms=", 13) == 0 ? atol(c->request + 13) : 0;
    c->due_ms = now_ms() + delay;
    return;
  }
}

static void accept_all(int epfd, int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("epoll_app: accept4");
      return;
    }
    if (fd >= MAX_CONNS) {
      close(fd);
      continue;
    }
    memset(&conns[fd], 0, sizeof conns[fd]);
    conns[fd].open = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

/* Answers the requests that are due; returns the ms until the next one, or -1. */
static int answer_due(int epfd) {
  long long now = now_ms(), next = -1;
  for (int fd = 0; fd < MAX_CONNS; ++fd) {
    if (!conns[fd].open || !conns[fd].due_ms) continue;
    if (conns[fd].due_ms <= now) {
      respond(epfd, fd);
    } else if (next < 0 || conns[fd].due_ms - now < next) {
      next = conns[fd].due_ms - now;
    }
  }
  return (int)next;
}

int main(int argc, char** argv) {
  int port = -1, oneshot = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--oneshot") == 0)
      oneshot = 1;
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "usage: epoll_app [--oneshot] --port N\n");
    return 100;
  }
  version = getenv("LEGACY_VERSION");
  if (!version || !*version) version = "1";
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = oneshot ? on_sigterm_oneshot : on_sigterm;
  sa.sa_flags = oneshot ? SA_RESETHAND : 0;
  sigaction(SIGTERM, &sa, NULL);
  /* SIGTERM is blocked but inside epoll_pwait, so the flag is never set
   * between the loop's check of it and the wait. */
  sigset_t term, waiting;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &waiting);
  sigdelset(&waiting, SIGTERM);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0) {
    fprintf(stderr, "epoll_app: fatal: unable to bind 127.0.0.1 port %d: %s\n", port,
            strerror(errno));
    return 1;
  }
  if (listen(listener, 128) != 0) {
    fprintf(stderr, "epoll_app: fatal: unable to listen: %s\n", strerror(errno));
    return 111;
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
  fprintf(stderr, "epoll_app: pid %d serving 127.0.0.1 port %d\n", (int)getpid(), port);
  for (;;) {
    if (stop && listener >= 0) {
      int open = 0;
      for (int fd = 0; fd < MAX_CONNS; ++fd) open += conns[fd].open;
      fprintf(stderr, "epoll_app: pid %d stopping on SIGTERM, %d connections open\n", (int)getpid(),
              open);
      epoll_ctl(epfd, EPOLL_CTL_DEL, listener, NULL);
      close(listener);
      listener = -1;
    }
    int timeout = answer_due(epfd);
    if (stop) {
      int open = 0;
      for (int fd = 0; fd < MAX_CONNS; ++fd) open += conns[fd].open;
      if (open == 0) break;
    }
    struct epoll_event events[64];
    int n = epoll_pwait(epfd, events, 64, timeout, &waiting);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener && !stop)
        accept_all(epfd, listener);
      else if (fd != listener && fd < MAX_CONNS && conns[fd].open)
        on_readable(epfd, fd);
    }
  }
  fprintf(stderr, "epoll_app: pid %d exiting\n", (int)getpid());
  return 0;
}

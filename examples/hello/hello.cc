// hello: a small HTTP server that baton can replace without dropping a
// request, written to be copied. What makes that work:
//   1. it does not bind: baton binds the sockets once and hands them over as
//      fds 3, 4, ... (systemd's LISTEN_FDS protocol, read by sd_listen_fds);
//   2. it says READY=1 (sd_notify) once it serves: only then does baton tell
//      the old version to drain;
//   3. on SIGTERM it drains: stops accepting, answers the requests it has,
//      closes its connections and exits 0. Connections it did not accept wait
//      in baton's socket for the new version.
// Every request gets "hello from pid P version V" (V: $HELLO_VERSION), over
// HTTP/1.1 keep-alive. One thread per connection keeps the code linear.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

// While draining, a connection may stay silent this long before it is closed:
// a keep-alive client may have sent its next request just as the drain began.
constexpr int kDrainGraceMs = 1000;
constexpr size_t kMaxRequest = 64 * 1024;  // head and body; longer ones are not served

std::vector<int> listeners;  // our copies of baton's sockets
int inert = -1;              // a socket that is not listening (see on_stop)
int wake[2] = {-1, -1};      // written on SIGTERM, never read: readable = draining
std::atomic<bool> stopping{false};
std::atomic<int> connections{0};  // open connections, each on its own thread
std::string body;

// Runs on the main thread only (the connection threads block the signal), so
// it interrupts the main thread's accept4() with EINTR.
extern "C" void on_stop(int) {
  int saved_errno = errno;
  stopping = true;
  // Stop accepting. The listeners stay blocking: O_NONBLOCK would change the
  // socket for baton and the other version too (they share the open file),
  // and shutdown() would close it for them. Instead our copies become a socket
  // that is not listening: an accept4() about to start fails at once rather
  // than waiting. baton's copies stay open, so new clients queue there.
  for (int fd : listeners) dup2(inert, fd);
  (void)!write(wake[1], "x", 1);
  errno = saved_errno;
}

// Takes one whole request off the front of `in` and returns its head,
// lowercased; nothing while more bytes are needed. Bodies are skipped.
std::optional<std::string> take_request(std::string& in) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  std::string head = in.substr(0, end + 2);  // every line ends in CRLF
  for (char& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  size_t length = 0;
  if (size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
    length = std::min<size_t>(strtoul(head.c_str() + at + 17, nullptr, 10), kMaxRequest);
  }
  if (in.size() < end + 4 + length) return std::nullopt;
  in.erase(0, end + 4 + length);
  return head;
}

// Answers the requests on one connection until it should close.
void serve(int fd) {
  std::string in;
  for (;;) {
    while (std::optional<std::string> head = take_request(in)) {
      // HTTP/1.1 keeps the connection open unless asked not to; while
      // draining, each answer says "Connection: close" and we close after it.
      bool keep = head->find(" http/1.1\r\n") != std::string::npos &&
                  head->find("\r\nconnection: close\r\n") == std::string::npos && !stopping;
      std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: " +
                        std::string(keep ? "keep-alive" : "close") +
                        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      // A blocking send() sends it all or fails (the client is gone).
      if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0 || !keep) return;
    }
    if (in.size() > kMaxRequest) return;  // larger than we serve
    // Wait for the client, or for the drain to begin; once draining, at most
    // kDrainGraceMs (the wake pipe stays readable, so it is left out then).
    bool draining = stopping;
    pollfd p[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
    int n = poll(p, draining ? 1 : 2, draining ? kDrainGraceMs : -1);
    if (n == 0) return;                        // silent through the grace period
    if (n < 0 || p[0].revents == 0) continue;  // EINTR, or the drain just began
    char buf[4096];
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got <= 0) return;  // the client closed (or reset) the connection
    in.append(buf, static_cast<size_t>(got));
  }
}

void start_connection(int fd) {
  ++connections;
  // Threads inherit the signal mask: block SIGTERM/SIGINT while creating this
  // one, so that the signal always lands on the main thread (see on_stop).
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  std::thread([fd] {
    serve(fd);
    close(fd);
    --connections;
    connections.notify_all();
  }).detach();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // stdout is a pipe to baton's log
  const char* version = getenv("HELLO_VERSION");
  if (!version) version = "1";
  body = "hello from pid " + std::to_string(getpid()) + " version " + version + "\n";

  int n = sd_listen_fds(0);
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) listeners.push_back(fd);
  }
  if (listeners.empty()) {
    fprintf(stderr, "hello: no listening stream socket in LISTEN_FDS: run me under baton\n");
    return 1;
  }
  inert = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (inert < 0 || pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    perror("hello");
    return 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = on_stop;  // no SA_RESTART: the signal must interrupt accept4()
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  sd_notifyf(0, "READY=1\nSTATUS=serving version %s", version);
  printf("hello: pid %d version %s serving %zu sockets\n", getpid(), version, listeners.size());

  std::vector<pollfd> fds = {{wake[0], POLLIN, 0}};
  for (int fd : listeners) fds.push_back({fd, POLLIN, 0});
  while (!stopping) {
    if (poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR: the loop test decides
    for (size_t i = 1; i < fds.size() && !stopping; ++i) {
      if (fds[i].revents == 0) continue;
      // Another process on the same socket may take this connection first;
      // accept4() then waits for the next one: harmless here, and SIGTERM
      // interrupts it.
      int fd = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) start_connection(fd);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE)) usleep(10000);  // out of fds: back off
    }
  }

  sd_notify(0, "STOPPING=1");
  printf("hello: pid %d draining %d connections\n", getpid(), connections.load());
  for (int open; (open = connections) > 0;) connections.wait(open);
  printf("hello: pid %d drained, exiting\n", getpid());
  return 0;
}

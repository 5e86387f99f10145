// test_app: the app baton's end-to-end tests and benchmarks drive (HELLO_BIN).
// It calls itself "hello" in its output: it began as examples/hello, which is
// now the short version a user copies; this one adds UDP, pipelining, /slow,
// /healthz and the fault switches below.
//
// It takes its listening sockets through systemd's socket activation protocol
// (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), reports READY=1 over NOTIFY_SOCKET,
// and then serves every inherited socket by type:
//   - SOCK_STREAM listeners (TCP v4/v6, unix): minimal HTTP/1.1, keep-alive,
//     pipelining, "/slow?ms=N" and "/healthz";
//   - SOCK_DGRAM sockets (UDP): each datagram gets one reply datagram.
// On SIGTERM/SIGINT it drains: stops accepting, lets every connection finish
// the request in flight (answered with "Connection: close"), then exits 0.
//
// The listening sockets are shared with the supervisor and with other
// generations of this app, so hello never changes their file status flags
// (O_NONBLOCK), never shutdown()s them and never setsockopt()s them.
//
// Environment (all optional):
//   HELLO_VERSION               version string shown in responses (default "1")
//   HELLO_BOOT_DELAY_MS         sleep this long before READY=1 (default 0)
//   HELLO_DRAIN_IDLE_MS         how long an idle keep-alive connection may
//                               still send one request while draining (1000)
//   HELLO_FAIL_AT_BOOT=N        exit with code N before READY=1
//   HELLO_HANG=1                never send READY=1, never accept
//   HELLO_CRASH_AFTER_READY_MS  abort() this long after READY=1
//   HELLO_IGNORE_SIGTERM=1      ignore SIGTERM entirely (SIGINT still drains)
//   HELLO_NOTIFY_ERRNO=N        send ERRNO=N instead of READY=1, then idle
//   HELLO_NO_NOTIFY=1           serve without ever sending READY=1 (an app
//                               that baton must probe)
//   HELLO_HEALTH_FAIL_MS=N      /healthz answers 503 for the first N ms
//   HELLO_HEALTH=fail           /healthz always answers 503
//   HELLO_HEALTH_FAIL_AFTER_MS=N /healthz answers 503 once N ms have passed
//   HELLO_FAULT_INSTANCE=N      the switches above that make it fail (FAIL_AT_BOOT,
//                               HANG, CRASH_AFTER_READY_MS, NOTIFY_ERRNO,
//                               HEALTH_FAIL_MS, HEALTH_FAIL_AFTER_MS, HEALTH)
//                               apply only to the
//                               instance whose BATON_INSTANCE is N
//   HELLO_EXIT_STATUS=N         exit with status N (not 0) once drained: an
//                               app that quits by itself, finishing its requests

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Signal state: the only global mutable state. The handler sets the flag and
// writes one byte to the self-pipe, which is never drained: once a stop was
// requested its read end stays readable, so it doubles as the "draining"
// notification that every thread can poll() together with its own fds.

std::atomic<bool> g_stop{false};
int g_wake_pipe[2] = {-1, -1};

// Async-signal-safe: an atomic store and a write() to a non-blocking pipe.
void request_stop() {
  const int saved_errno = errno;
  g_stop.store(true);
  const char byte = 1;
  (void)!write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

extern "C" void on_stop_signal(int) {
  request_stop();
}

// SIGUSR1 is only used to knock the main thread out of a blocking accept4().
extern "C" void on_wake_signal(int) {}

bool stop_requested() {
  return g_stop.load();
}
int wake_fd() {
  return g_wake_pipe[0];
}

// ---------------------------------------------------------------------------
// Small helpers.

constexpr int kMaxSlowMs = 60000;
constexpr size_t kMaxHeadBytes = 16 * 1024;

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

std::optional<long> parse_long(std::string_view s) {
  long value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

// Reads an integer env var in [lo, hi]; unset -> nullopt, invalid -> warning + nullopt.
std::optional<int> env_int(const char* name, long lo, long hi) {
  const char* raw = std::getenv(name);
  if (raw == nullptr || *raw == '\0') return std::nullopt;
  const auto value = parse_long(raw);
  if (!value || *value < lo || *value > hi) {
    std::fprintf(stderr, "hello: ignoring invalid %s=%s\n", name, raw);
    return std::nullopt;
  }
  return static_cast<int>(*value);
}

bool env_flag(const char* name) {
  const char* raw = std::getenv(name);
  return raw != nullptr && *raw != '\0' && std::string_view(raw) != "0";
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Waits until fd is readable or timeout_ms passes (-1: forever). Retries EINTR.
bool wait_readable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    const int n = poll(&pfd, 1, timeout_ms);
    if (n >= 0) return n > 0;
    if (errno != EINTR) return false;
  }
}

void wait_for_stop() {
  wait_readable(wake_fd(), -1);
}

// Writes all of data; MSG_NOSIGNAL so a vanished peer is an error, not SIGPIPE.
bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// ---------------------------------------------------------------------------
// Configuration.

struct Config {
  std::string version = "1";
  int boot_delay_ms = 0;
  int drain_idle_ms = 1000;
  std::optional<int> fail_at_boot;
  bool hang = false;
  std::optional<int> crash_after_ready_ms;
  bool ignore_sigterm = false;
  std::optional<int> notify_errno;
  bool no_notify = false;
  int health_fail_ms = 0;
  std::optional<int> health_fail_after_ms;
  bool health_fails = false;
  int exit_status = 0;
};

Config load_config() {
  Config cfg;
  if (const char* v = std::getenv("HELLO_VERSION"); v != nullptr && *v != '\0') cfg.version = v;
  cfg.boot_delay_ms = env_int("HELLO_BOOT_DELAY_MS", 0, 3600000).value_or(0);
  cfg.drain_idle_ms = env_int("HELLO_DRAIN_IDLE_MS", 0, 3600000).value_or(1000);
  cfg.fail_at_boot = env_int("HELLO_FAIL_AT_BOOT", 0, 255);
  cfg.hang = env_flag("HELLO_HANG");
  cfg.crash_after_ready_ms = env_int("HELLO_CRASH_AFTER_READY_MS", 0, 3600000);
  cfg.ignore_sigterm = env_flag("HELLO_IGNORE_SIGTERM");
  cfg.notify_errno = env_int("HELLO_NOTIFY_ERRNO", 1, 4095);
  cfg.no_notify = env_flag("HELLO_NO_NOTIFY");
  cfg.health_fail_ms = env_int("HELLO_HEALTH_FAIL_MS", 0, 3600000).value_or(0);
  cfg.health_fail_after_ms = env_int("HELLO_HEALTH_FAIL_AFTER_MS", 0, 3600000);
  const char* health = std::getenv("HELLO_HEALTH");
  cfg.health_fails = health != nullptr && std::string_view(health) == "fail";
  cfg.exit_status = env_int("HELLO_EXIT_STATUS", 0, 255).value_or(0);
  if (auto only = env_int("HELLO_FAULT_INSTANCE", 1, 1000)) {
    const char* instance = std::getenv("BATON_INSTANCE");
    if (instance == nullptr || parse_long(instance) != *only) {
      cfg.fail_at_boot.reset();
      cfg.hang = false;
      cfg.crash_after_ready_ms.reset();
      cfg.notify_errno.reset();
      cfg.health_fail_ms = 0;
      cfg.health_fail_after_ms.reset();
      cfg.health_fails = false;
    }
  }
  return cfg;
}

// ---------------------------------------------------------------------------
// Signals and threads.

void install_handler(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // deliberately no SA_RESTART: the signal must interrupt accept4()
  sigaction(sig, &sa, nullptr);
}

void setup_signals(bool ignore_sigterm) {
  if (pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("hello: pipe2");
    std::exit(1);
  }
  signal(SIGPIPE, SIG_IGN);
  if (ignore_sigterm) {
    signal(SIGTERM, SIG_IGN);
  } else {
    install_handler(SIGTERM, on_stop_signal);
  }
  install_handler(SIGINT, on_stop_signal);
  install_handler(SIGUSR1, on_wake_signal);
}

// Blocks the stop/wake signals in the calling thread while alive. Threads
// inherit the mask of their creator, so every helper thread is created inside
// one of these: the signals then always land on the main thread, the only one
// that may sit in a blocking accept4() that they have to interrupt.
class SignalBlock {
 public:
  SignalBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  sigset_t old_;
};

template <class F>
std::thread spawn(F&& fn) {
  SignalBlock block;
  return std::thread(std::forward<F>(fn));
}

// Counts live connection threads so main can wait for all of them to finish.
class ConnectionTracker {
 public:
  void add() {
    std::lock_guard lock(mu_);
    ++active_;
  }
  // Notifies under the lock so the waiter cannot return (and destroy us)
  // before this thread is done touching the tracker.
  void done() {
    std::lock_guard lock(mu_);
    --active_;
    cv_.notify_all();
  }
  int active() {
    std::lock_guard lock(mu_);
    return active_;
  }
  void wait_idle() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return active_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
};

struct App {
  Config cfg;
  pid_t pid = getpid();
  ConnectionTracker connections;

  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  std::string hello_body() const {
    return "hello from pid " + std::to_string(pid) + " version " + cfg.version + "\n";
  }
  /// What /healthz answers: 200 unless HELLO_HEALTH=fail, or within the
  /// first HELLO_HEALTH_FAIL_MS.
  bool healthy() const {
    if (cfg.health_fails) return false;
    auto up = std::chrono::steady_clock::now() - started;
    if (cfg.health_fail_after_ms && up >= std::chrono::milliseconds(*cfg.health_fail_after_ms)) {
      return false;
    }
    return up >= std::chrono::milliseconds(cfg.health_fail_ms);
  }
};

// ---------------------------------------------------------------------------
// HTTP.

struct Request {
  std::string method;
  std::string target;
  bool keep_alive = true;
  uint64_t content_length = 0;
};

bool is_token_char(unsigned char c) {
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_token_char(c); });
}

// Parses "METHOD SP TARGET SP HTTP/1.x"; sets the version's default keep-alive.
bool parse_request_line(std::string_view line, Request& req) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty()) return false;
  if (version == "HTTP/1.1") {
    req.keep_alive = true;
  } else if (version == "HTTP/1.0") {
    req.keep_alive = false;
  } else {
    return false;
  }
  req.method = method;
  req.target = target;
  return true;
}

// Applies one "Connection" header value (a comma-separated token list).
void apply_connection_header(std::string_view value, Request& req) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string token = lowercase(trim(value.substr(0, comma)));
    if (token == "close") req.keep_alive = false;
    if (token == "keep-alive") req.keep_alive = true;
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
}

bool parse_header(std::string_view line, Request& req, bool& seen_length) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) return false;
  const std::string name = lowercase(line.substr(0, colon));
  const std::string_view value = trim(line.substr(colon + 1));
  if (name == "connection") {
    apply_connection_header(value, req);
  } else if (name == "content-length") {
    uint64_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec != std::errc() || end != value.data() + value.size() || value.empty()) return false;
    if (seen_length && length != req.content_length) return false;
    req.content_length = length;
    seen_length = true;
  } else if (name == "transfer-encoding") {
    return false;  // chunked bodies are not supported by this minimal server
  }
  return true;
}

// Parses a request head (without the final CRLFCRLF).
bool parse_head(std::string_view head, Request& req) {
  size_t eol = head.find("\r\n");
  if (!parse_request_line(head.substr(0, eol), req)) return false;
  bool seen_length = false;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    if (!parse_header(head.substr(0, eol), req, seen_length)) return false;
  }
  return true;
}

// Returns the value of query parameter `key` in target ("/p?a=1&b=2").
std::optional<std::string_view> query_param(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) return pair.substr(eq + 1);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return std::nullopt;
}

std::string format_response(std::string_view status, std::string_view body, bool keep_alive,
                            bool head_only) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size());
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

bool send_bad_request(int fd) {
  return send_all(fd, format_response("400 Bad Request", "bad request\n", false, false));
}

// Routes and answers one request. Returns false if the connection must close.
bool respond(int fd, const Request& req, const App& app) {
  const std::string_view target = req.target;
  const std::string_view path = target.substr(0, target.find('?'));
  std::string body = app.hello_body();
  if (path == "/healthz") {
    if (!app.healthy()) {
      return send_all(fd, format_response("503 Service Unavailable", "not yet\n", req.keep_alive,
                                          req.method == "HEAD")) &&
             req.keep_alive;
    }
    body = "ok\n";
  } else if (path == "/slow") {
    const auto ms = parse_long(query_param(target, "ms").value_or(""));
    if (!ms || *ms < 0) {
      send_bad_request(fd);
      return false;
    }
    sleep_ms(static_cast<int>(std::min<long>(*ms, kMaxSlowMs)));
  }
  // Decided after any /slow sleep: a drain that began meanwhile closes the connection.
  const bool keep_alive = req.keep_alive && !stop_requested();
  const std::string response = format_response("200 OK", body, keep_alive, req.method == "HEAD");
  return send_all(fd, response) && keep_alive;
}

// One HTTP connection: a read buffer plus the drain bookkeeping.
class Connection {
 public:
  Connection(int fd, const App& app) : fd_(fd), app_(app) {}

  void serve() {
    for (;;) {
      while (buf_.starts_with("\r\n")) buf_.erase(0, 2);  // tolerate stray CRLFs
      const size_t end = buf_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buf_.size() > kMaxHeadBytes) {
          send_bad_request(fd_);
          return;
        }
        if (!read_more()) return;
        continue;
      }
      Request req;
      const bool ok = parse_head(std::string_view(buf_).substr(0, end), req);
      buf_.erase(0, end + 4);
      if (!ok) {
        send_bad_request(fd_);
        return;
      }
      if (!skip_body(req.content_length) || !respond(fd_, req, app_)) return;
    }
  }

 private:
  // Appends more bytes to buf_. Returns false on EOF/error, or when the
  // connection is idle (empty buffer) and the drain idle grace ran out.
  bool read_more() {
    for (;;) {
      pollfd pfds[2] = {{fd_, POLLIN, 0}, {wake_fd(), POLLIN, 0}};
      const int n = poll(pfds, draining_ ? 1 : 2, poll_timeout());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      if (n == 0) return false;  // idle through the drain grace period: give up
      if (!draining_ && (pfds[1].revents & POLLIN)) begin_drain();
      if (pfds[0].revents != 0) return recv_some();
    }
  }

  void begin_drain() {
    draining_ = true;
    drain_deadline_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(app_.cfg.drain_idle_ms);
  }

  // Forever unless draining with nothing buffered: then the remaining idle grace.
  int poll_timeout() const {
    if (!draining_ || !buf_.empty()) return -1;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        drain_deadline_ - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  }

  bool recv_some() {
    char chunk[4096];
    for (;;) {
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // peer closed or reset
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }

  // Discards a request body of `length` bytes (part may already be buffered).
  bool skip_body(uint64_t length) {
    const size_t from_buf = static_cast<size_t>(std::min<uint64_t>(length, buf_.size()));
    buf_.erase(0, from_buf);
    length -= from_buf;
    char chunk[4096];
    while (length > 0) {
      const ssize_t n = recv(fd_, chunk, std::min<uint64_t>(length, sizeof chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      length -= static_cast<uint64_t>(n);
    }
    return true;
  }

  const int fd_;
  const App& app_;
  std::string buf_;
  bool draining_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
};

// Hands an accepted connection to its own detached thread.
void start_connection(int fd, App& app) {
  app.connections.add();
  try {
    spawn([fd, &app] {
      Connection(fd, app).serve();
      close(fd);
      app.connections.done();  // last touch of `app`
    }).detach();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "hello: cannot start connection thread: %s\n", e.what());
    close(fd);
    app.connections.done();
  }
}

// ---------------------------------------------------------------------------
// UDP: one thread polls every datagram socket and the drain pipe. recvfrom()
// and sendto() use MSG_DONTWAIT per call, which leaves the shared socket's
// flags alone and copes with another process having read the datagram first.

void answer_datagram(int fd, const std::string& reply) {
  char buf[65536];
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  const ssize_t n =
      recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n < 0 || from_len <= sizeof(sa_family_t)) return;  // nothing, or unnamed unix sender
  sendto(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
         reinterpret_cast<sockaddr*>(&from), from_len);
}

void serve_datagrams(const std::vector<int>& fds, const App& app) {
  const std::string reply = app.hello_body();
  std::vector<pollfd> pfds{{wake_fd(), POLLIN, 0}};
  for (int fd : fds) pfds.push_back({fd, POLLIN, 0});
  for (;;) {
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("hello: poll (udp)");
      return;
    }
    if (pfds[0].revents & POLLIN) return;  // draining: UDP has no connections to finish
    for (size_t i = 1; i < pfds.size(); ++i) {
      if (pfds[i].revents != 0) answer_datagram(pfds[i].fd, reply);
    }
  }
}

// ---------------------------------------------------------------------------
// Accepting (main thread only).
//
// We cannot make the shared listeners non-blocking, so accept4() is blocking:
// another process sharing the socket may take the connection between our
// poll() and accept4(), and then accept4() waits. That is fine because SIGTERM
// is only deliverable to this thread and its handler has no SA_RESTART, so it
// interrupts accept4() with EINTR. The one gap, a signal landing just before
// accept4() is entered, is closed by the kicker thread below.

// Kicker: once a stop was requested, pokes the main thread with SIGUSR1 until
// it reports that it has left the accept loop.
void kick_until_out_of_accept(pthread_t main_thread, const std::atomic<bool>& out) {
  wait_for_stop();
  while (!out.load()) {
    pthread_kill(main_thread, SIGUSR1);
    sleep_ms(20);
  }
}

bool is_transient_accept_error(int err) {
  return err == EINTR || err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED ||
         err == EPROTO || err == EPERM;
}

// Accepts one connection from a listener; returns false if the listener is unusable.
bool accept_one(int listener, App& app) {
  const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    start_connection(fd, app);
    return true;
  }
  const int err = errno;
  if (is_transient_accept_error(err)) return true;
  std::fprintf(stderr, "hello: accept on fd %d: %s\n", listener, std::strerror(err));
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    sleep_ms(10);  // out of resources: back off instead of spinning
    return true;
  }
  return false;
}

void accept_loop(const std::vector<int>& listeners, App& app) {
  std::vector<pollfd> pfds{{wake_fd(), POLLIN, 0}};
  for (int fd : listeners) pfds.push_back({fd, POLLIN, 0});
  while (!stop_requested()) {
    if (poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("hello: poll");
      request_stop();  // cannot accept any more: drain what we have
      return;
    }
    for (size_t i = 1; i < pfds.size() && !stop_requested(); ++i) {
      if (pfds[i].revents == 0) continue;
      if (!accept_one(pfds[i].fd, app)) pfds[i].fd = -1;  // stop polling a broken listener
    }
  }
}

// ---------------------------------------------------------------------------
// Startup.

struct Sockets {
  std::vector<int> stream_listeners;
  std::vector<int> datagrams;
  std::vector<std::string> names;
};

int socket_option(int fd, int option) {
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) return -1;
  return value;
}

Sockets take_sockets() {
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);
  if (n < 0) {
    std::fprintf(stderr, "hello: sd_listen_fds_with_names: %s\n", std::strerror(-n));
    std::exit(1);
  }
  if (n == 0) {
    std::fprintf(stderr, "hello: no sockets passed (LISTEN_FDS unset); run me under baton\n");
    std::exit(1);
  }
  Sockets s;
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    s.names.emplace_back(names != nullptr && names[i] != nullptr ? names[i] : "unknown");
    const int type = socket_option(fd, SO_TYPE);
    if (type == SOCK_STREAM && socket_option(fd, SO_ACCEPTCONN) == 1) {
      s.stream_listeners.push_back(fd);
    } else if (type == SOCK_DGRAM) {
      s.datagrams.push_back(fd);
    } else {
      std::fprintf(stderr, "hello: ignoring fd %d (%s): not a stream listener or datagram socket\n",
                   fd, s.names.back().c_str());
    }
  }
  for (int i = 0; names != nullptr && i < n; ++i) std::free(names[i]);
  std::free(names);
  return s;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

// Runs the failure switches that act before READY=1; returns only if none fired.
void maybe_fail_before_ready(const App& app) {
  if (app.cfg.fail_at_boot) {
    std::fprintf(stderr, "hello: failing at boot as asked\n");
    std::exit(*app.cfg.fail_at_boot);
  }
  if (app.cfg.hang || app.cfg.notify_errno) {
    if (app.cfg.notify_errno) {
      sd_notifyf(0, "ERRNO=%d\nSTATUS=failed to start", *app.cfg.notify_errno);
    } else {
      std::printf("hello: pid %d hanging as asked\n", app.pid);
    }
    wait_for_stop();
    std::printf("hello: pid %d stopped before ready, exiting\n", app.pid);
    std::exit(0);
  }
}

void announce_ready(const App& app, const Sockets& s) {
  if (!app.cfg.no_notify)
    sd_notifyf(0, "READY=1\nSTATUS=serving version %s, pid %d", app.cfg.version.c_str(), app.pid);
  std::printf("hello: version %s pid %d ready on %zu sockets (%s)\n", app.cfg.version.c_str(),
              app.pid, s.names.size(), join(s.names, ", ").c_str());
  std::fflush(stdout);
}

void schedule_crash(int ms) {
  spawn([ms] {
    sleep_ms(ms);
    std::fprintf(stderr, "hello: crashing as asked\n");
    std::abort();
  }).detach();
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  App app;
  app.cfg = load_config();
  setup_signals(app.cfg.ignore_sigterm);
  const Sockets sockets = take_sockets();

  // Slow boot: nothing is accepted until READY=1; a stop request cuts it short.
  if (app.cfg.boot_delay_ms > 0 && wait_readable(wake_fd(), app.cfg.boot_delay_ms)) {
    std::printf("hello: pid %d stopped before ready, exiting\n", app.pid);
    return 0;
  }
  maybe_fail_before_ready(app);

  std::atomic<bool> out_of_accept{false};
  std::thread kicker = spawn([&out_of_accept, main_thread = pthread_self()] {
    kick_until_out_of_accept(main_thread, out_of_accept);
  });
  std::thread udp;
  if (!sockets.datagrams.empty()) {
    udp = spawn([&sockets, &app] { serve_datagrams(sockets.datagrams, app); });
  }

  announce_ready(app, sockets);
  if (app.cfg.crash_after_ready_ms) schedule_crash(*app.cfg.crash_after_ready_ms);

  accept_loop(sockets.stream_listeners, app);
  out_of_accept.store(true);

  // Drain. Closing our own copies of the listeners is safe: the supervisor
  // holds its own. Never shutdown() them: that would affect every holder.
  for (int fd : sockets.stream_listeners) close(fd);
  sd_notify(0, "STOPPING=1");
  std::printf("hello: pid %d draining %d connections\n", app.pid, app.connections.active());
  kicker.join();
  if (udp.joinable()) udp.join();
  app.connections.wait_idle();
  std::printf("hello: pid %d drained, exiting\n", app.pid);
  return app.cfg.exit_status;
}

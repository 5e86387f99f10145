// load_client: the closed-loop HTTP/1.1 load generator behind load_client.h.
// Each thread runs requests one after another on non-blocking sockets with a
// poll()-enforced per-request deadline, and tallies outcomes privately; wait()
// merges the tallies after joining, so no counters but `completed` are shared.

#include "load_client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "deadline.h"
#include "endpoint.h"
#include "http_response.h"

namespace load {

const Failure kAllFailures[8] = {
    Failure::kRefused,       Failure::kReset,           Failure::kTimeout, Failure::kHung,
    Failure::kShortResponse, Failure::kInvalidResponse, Failure::kNon2xx,  Failure::kOther};

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::kRefused:
      return "refused";
    case Failure::kReset:
      return "reset";
    case Failure::kTimeout:
      return "timeout";
    case Failure::kHung:
      return "hung";
    case Failure::kShortResponse:
      return "short_response";
    case Failure::kInvalidResponse:
      return "invalid_response";
    case Failure::kNon2xx:
      return "non_2xx";
    case Failure::kOther:
      return "other";
  }
  return "other";
}

uint64_t LoadResult::failed() const {
  uint64_t sum = 0;
  for (const auto& [kind, count] : failures) sum += count;
  return sum;
}

namespace {

constexpr size_t kMaxExamples = 10;
constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr int kMaxConnections = 4096;
constexpr int kMaxRate = 1000000;

// ---------------------------------------------------------------------------
// Small system helpers.

/// A move-only owning file descriptor; -1 owns nothing.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  /// The owned descriptor, or -1.
  int fd_ = -1;
};

/// strerror(), but thread-safe.
std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// ---------------------------------------------------------------------------
// Outcomes.

/// Why one request failed: its kind and a human description.
struct Fault {
  Failure kind;
  std::string detail;
};

/// The result of one request/response exchange.
struct Outcome {
  /// Set iff the request failed.
  std::optional<Fault> fault;
  /// The pid from the body (0 if absent).
  int pid = 0;
  /// The response was complete and the server allows another request on this connection.
  bool reusable = false;
};

/// The failure kind for a connect() errno.
Failure connect_failure(int err, bool is_unix) {
  switch (err) {
    case ECONNREFUSED:
      return Failure::kRefused;
    case ENOENT:
      return Failure::kRefused;
    case ETIMEDOUT:
      return Failure::kTimeout;
    case EAGAIN:
      return is_unix ? Failure::kTimeout : Failure::kOther;  // unix: backlog full
    case ECONNRESET:
      return Failure::kReset;
    default:
      return Failure::kOther;
  }
}

Fault connect_fault(const Endpoint& ep, int err) {
  const bool is_unix = ep.addr.ss_family == AF_UNIX;
  return Fault{connect_failure(err, is_unix),
               fmt::format("connect {}: {}", ep.text, errno_text(err))};
}

// ---------------------------------------------------------------------------
// Connecting.

/// Unix: a blocking connect() bounded by SO_SNDTIMEO, because a non-blocking
/// one fails with EAGAIN when the listener's backlog is momentarily full.
std::optional<Fault> connect_unix(const Fd& fd, const Endpoint& ep, Clock::time_point deadline) {
  for (;;) {
    const int ms = std::max(remaining_ms(deadline), 1);
    const timeval tv{ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
      return Fault{Failure::kOther, "setsockopt SO_SNDTIMEO: " + errno_text(errno)};
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) == 0) break;
    const int err = errno;
    if (err != EINTR || Clock::now() >= deadline) return connect_fault(ep, err);
  }
  if (fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) {
    return Fault{Failure::kOther, "fcntl O_NONBLOCK: " + errno_text(errno)};
  }
  return std::nullopt;
}

/// TCP: a non-blocking connect() completed under poll().
std::optional<Fault> connect_tcp(const Fd& fd, const Endpoint& ep, Clock::time_point deadline) {
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) == 0) {
    return std::nullopt;
  }
  if (errno != EINPROGRESS) return connect_fault(ep, errno);
  const int ready = wait_fd(fd.get(), POLLOUT, deadline);
  if (ready == 0) {
    return Fault{Failure::kTimeout, fmt::format("connect {}: no connection in time", ep.text)};
  }
  if (ready < 0) return Fault{Failure::kOther, "poll: " + errno_text(errno)};
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return connect_fault(ep, err);
  return std::nullopt;
}

/// Opens a connection to ep into `out`, or says why not.
std::optional<Fault> open_connection(const Endpoint& ep, Clock::time_point deadline, Fd& out) {
  const bool is_unix = ep.addr.ss_family == AF_UNIX;
  const int flags = SOCK_STREAM | SOCK_CLOEXEC | (is_unix ? 0 : SOCK_NONBLOCK);
  Fd fd(::socket(ep.addr.ss_family, flags, 0));
  if (!fd.valid()) return Fault{Failure::kOther, "socket: " + errno_text(errno)};
  auto fault = is_unix ? connect_unix(fd, ep, deadline) : connect_tcp(fd, ep, deadline);
  if (!fault) out = std::move(fd);
  return fault;
}

// ---------------------------------------------------------------------------
// One request/response on a connected, non-blocking socket.

/// What a receive attempt produced.
enum class Io { kData, kEof, kTimeout, kError };

/// Sends one request and reads its response before `deadline`.
class Exchange {
 public:
  Exchange(int fd, Clock::time_point deadline, std::chrono::milliseconds timeout)
      : fd_(fd), deadline_(deadline), timeout_(timeout) {}

  Outcome run(std::string_view request) {
    if (auto fault = send_all(request)) return Outcome{std::move(fault), 0, false};
    return read_response();
  }

 private:
  std::optional<Fault> send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return io_fault("send", errno);
      const int ready = wait_fd(fd_, POLLOUT, deadline_);
      if (ready == 0) return timeout_fault("send");
      if (ready < 0) return Fault{Failure::kOther, "poll: " + errno_text(errno)};
    }
    return std::nullopt;
  }

  Io receive() {
    char chunk[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
        received_ += static_cast<size_t>(n);
        return Io::kData;
      }
      if (n == 0) return Io::kEof;
      if (errno == EINTR) continue;
      const int ready = errno == EAGAIN ? wait_fd(fd_, POLLIN, deadline_) : -1;
      if (ready == 0) return Io::kTimeout;
      if (ready < 0) {
        err_ = errno;
        return Io::kError;
      }
    }
  }

  /// The fault for a receive that did not produce data.
  Fault receive_fault(Io io) const {
    if (io == Io::kTimeout) return timeout_fault("recv");
    if (io == Io::kEof) return io_fault_text("recv: EOF", received_ == 0);
    return io_fault("recv", err_);
  }

  Fault io_fault(const char* what, int err) const {
    const std::string text = fmt::format("{}: {}", what, errno_text(err));
    if (err == ECONNRESET || err == EPIPE) return io_fault_text(text, received_ == 0);
    return Fault{Failure::kOther, text};
  }

  Fault io_fault_text(const std::string& text, bool nothing_received) const {
    return Fault{nothing_received ? Failure::kReset : Failure::kShortResponse,
                 fmt::format("{} after {} bytes", text, received_)};
  }

  /// Connected, but the server did not take the request or answer it in time.
  Fault timeout_fault(const char* what) const {
    return Fault{Failure::kHung, fmt::format("{}: no complete response within {} ms ({} bytes "
                                             "received)",
                                             what, timeout_.count(), received_)};
  }

  Outcome read_response() {
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHeadBytes) return invalid("response head larger than 64 KiB");
      if (const Io io = receive(); io != Io::kData) return Outcome{receive_fault(io), 0, false};
    }
    ResponseHead head;
    std::string why;
    if (!parse_head(std::string_view(buf_).substr(0, head_end), head, why)) return invalid(why);
    buf_.erase(0, head_end + 4);
    if (auto fault = read_body(head)) return Outcome{std::move(fault), 0, false};
    if (head.content_length && buf_.size() > *head.content_length) {
      return invalid(fmt::format("{} unexpected bytes after the response",
                                 buf_.size() - *head.content_length));
    }
    Outcome out{std::nullopt, parse_pid(buf_), head.keep_alive};
    if (head.status < 200 || head.status > 299) {
      out.fault = Fault{Failure::kNon2xx, fmt::format("HTTP {}", head.status)};
    }
    return out;
  }

  std::optional<Fault> read_body(const ResponseHead& head) {
    if (head.content_length) {
      while (buf_.size() < *head.content_length) {
        if (const Io io = receive(); io != Io::kData) return receive_fault(io);
      }
      return std::nullopt;
    }
    for (;;) {  // delimited by EOF
      if (buf_.size() > kMaxBodyBytes) return Fault{Failure::kInvalidResponse, "body too large"};
      const Io io = receive();
      if (io == Io::kEof) return std::nullopt;
      if (io != Io::kData) return receive_fault(io);
    }
  }

  Outcome invalid(std::string why) const {
    return Outcome{Fault{Failure::kInvalidResponse, std::move(why)}, 0, false};
  }

  const int fd_;
  const Clock::time_point deadline_;
  const std::chrono::milliseconds timeout_;
  /// Unparsed response bytes (the head is erased once parsed).
  std::string buf_;
  /// Every response byte received, for messages and reset-vs-short.
  size_t received_ = 0;
  /// errno of the last failed recv/poll.
  int err_ = 0;
};

// ---------------------------------------------------------------------------
// Threads.

/// What every worker reads; only `stop` and `completed` change during the run.
struct Shared {
  LoadOptions options;
  Endpoint endpoint;
  /// The full request bytes.
  std::string request;
  Clock::time_point started;
  /// started + min(duration or max_duration, max_duration).
  /// The bound on the run's end; end_at() may bring it forward.
  Clock::time_point limit;
  /// When the run ends: `limit` at first.
  std::atomic<Clock::time_point> end;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};
  /// With a rate: the next request to be made, numbered from 0; request k is
  /// due at started + k / rate.
  std::atomic<uint64_t> next_request{0};
  /// Every pid that has served a response so far. Threads add a pid only
  /// when it differs from their previous one, so the lock is rarely taken.
  mutable std::mutex seen_mutex;
  std::set<int> seen;
};

/// One failure example with its time, so examples can be merged in order.
struct Example {
  Clock::time_point at;
  std::string text;
};

/// One thread's private results; read by wait() only after joining.
struct Tally {
  uint64_t ok = 0;
  std::map<Failure, uint64_t> failures;
  std::map<int, uint64_t> pids;
  /// At most kMaxExamples, in time order.
  std::vector<Example> examples;
  std::vector<Sample> samples;
  uint64_t connections_opened = 0;
  Clock::time_point finished;
};

/// A closed-loop client: one request at a time until the run ends.
class Worker {
 public:
  Worker(Shared& shared, int index) : shared_(shared), index_(index) {}

  /// The thread body; never throws.
  void run() noexcept {
    try {
      while (running()) {
        if (shared_.options.rate == 0) {
          one_request(Clock::now());
        } else if (auto due = next_due()) {
          one_request(*due);
        }
      }
    } catch (const std::exception& e) {
      record_fault(Clock::now(), Fault{Failure::kOther, fmt::format("thread: {}", e.what())},
                   false);
    }
    conn_.reset();
    tally_.finished = Clock::now();
  }

  const Tally& tally() const { return tally_; }

 private:
  bool running() const {
    return !shared_.stop.load(std::memory_order_relaxed) && Clock::now() < end();
  }

  Clock::time_point end() const { return shared_.end.load(std::memory_order_relaxed); }

  /// Paced: takes the next request's number and sleeps until it is due; its
  /// due time, or nullopt if the run ended first. Sleeps in short steps so
  /// that stop() is seen soon even at a low rate.
  std::optional<Clock::time_point> next_due() {
    const uint64_t k = shared_.next_request.fetch_add(1, std::memory_order_relaxed);
    const auto offset = std::chrono::duration<double>(static_cast<double>(k) /
                                                      static_cast<double>(shared_.options.rate));
    const auto due = shared_.started + std::chrono::duration_cast<Clock::duration>(offset);
    // Due after the end: this thread only waits for the end. The end is
    // read again after the sleep, since end_at() may have moved it.
    for (;;) {
      if (!sleep_until(std::min(due, end()))) return std::nullopt;
      if (due < end() && Clock::now() >= due) return due;
      if (Clock::now() >= end()) return std::nullopt;
    }
  }

  /// Sleeps until `t` or the end of the run; false if the run ended first.
  bool sleep_until(Clock::time_point t) const {
    while (Clock::now() < t) {
      if (!running()) return false;
      std::this_thread::sleep_until(std::min(t, Clock::now() + std::chrono::milliseconds(20)));
    }
    return !shared_.stop.load(std::memory_order_relaxed);
  }

  /// One request; `due` is when it should have started (now, unless paced),
  /// where its latency is measured from.
  void one_request(Clock::time_point due) {
    const auto t0 = Clock::now();
    const auto deadline = t0 + shared_.options.request_timeout;
    const bool reused = conn_.valid();
    Outcome out;
    if (!reused) {
      ++tally_.connections_opened;
      out.fault = open_connection(shared_.endpoint, deadline, conn_);
    }
    if (!out.fault) {
      out = Exchange(conn_.get(), deadline, shared_.options.request_timeout).run(shared_.request);
    }
    record(due, Clock::now(), out, reused);
    if (!out.reusable || shared_.options.mode != Mode::kKeepAlive) conn_.reset();
    const bool backoff =
        shared_.options.rate == 0 && out.fault &&
        (out.fault->kind == Failure::kRefused || out.fault->kind == Failure::kOther);
    if (backoff) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // don't spin
  }

  void record(Clock::time_point t0, Clock::time_point t1, const Outcome& out, bool reused) {
    if (shared_.options.record_latencies) {
      tally_.samples.push_back(
          Sample{t0, std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0), !out.fault});
    }
    if (out.fault) {
      record_fault(t0, *out.fault, reused);
      shared_.failed.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++tally_.ok;
      ++tally_.pids[out.pid];
      if (out.pid != last_pid_) {
        last_pid_ = out.pid;
        std::lock_guard lock(shared_.seen_mutex);
        shared_.seen.insert(out.pid);
      }
    }
    shared_.completed.fetch_add(1, std::memory_order_relaxed);
  }

  void record_fault(Clock::time_point at, const Fault& fault, bool reused) {
    ++tally_.failures[fault.kind];
    if (tally_.examples.size() >= kMaxExamples) return;
    const bool idle_close = reused && fault.kind == Failure::kReset;
    const double since = std::chrono::duration<double>(at - shared_.started).count();
    tally_.examples.push_back(Example{
        at, fmt::format("{}{}: {} [thread {}, +{:.3f}s]", to_string(fault.kind),
                        idle_close ? " on reused connection" : "", fault.detail, index_, since)});
  }

  Shared& shared_;
  /// For failure examples.
  const int index_;
  /// The current connection (keep-alive mode keeps it between requests).
  Fd conn_;
  Tally tally_;
  /// The pid that served this thread's previous response, or -1.
  int last_pid_ = -1;
};

std::string build_request(const LoadOptions& options) {
  const char* connection = options.mode == Mode::kKeepAlive ? "keep-alive" : "close";
  return fmt::format("GET {} HTTP/1.1\r\nHost: baton-load\r\nConnection: {}\r\n\r\n", options.path,
                     connection);
}

/// Checks everything but the address; returns an error message or "".
std::string validate(const LoadOptions& o) {
  if (o.connections < 1 || o.connections > kMaxConnections) {
    return fmt::format("connections must be 1..{}, not {}", kMaxConnections, o.connections);
  }
  if (o.duration.count() < 0) return "duration must not be negative";
  if (o.max_duration.count() <= 0) return "max_duration must be positive";
  if (o.request_timeout.count() <= 0) return "request_timeout must be positive";
  if (o.rate < 0 || o.rate > kMaxRate) {
    return fmt::format("rate must be 0..{} requests a second, not {}", kMaxRate, o.rate);
  }
  const bool bad_char = std::any_of(o.path.begin(), o.path.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == '\x7f';
  });
  if (!o.path.starts_with('/') || bad_char) {
    return "path must start with '/' and contain no spaces or control characters";
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------
// LoadRun.

/// Everything a run owns. Heap-allocated so workers can keep references.
struct LoadRun::State {
  Shared shared;
  /// One per thread; workers[i] runs on threads[i].
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  /// Set by the first wait().
  std::optional<LoadResult> result;

  /// Starts one thread per connection; returns 0 or the errno of a failed start.
  int spawn() {
    try {
      for (int i = 0; i < shared.options.connections; ++i) {
        workers.push_back(std::make_unique<Worker>(shared, i));
        threads.emplace_back([w = workers.back().get()] { w->run(); });
      }
    } catch (const std::system_error& e) {
      return e.code().value();
    }
    return 0;
  }

  void join_all() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  LoadResult merge() const;
};

LoadResult LoadRun::State::merge() const {
  LoadResult r;
  r.started = shared.started;
  std::vector<Example> examples;
  Clock::time_point last = shared.started;
  for (const auto& w : workers) {
    const Tally& t = w->tally();
    r.ok += t.ok;
    for (const auto& [kind, n] : t.failures) r.failures[kind] += n;
    for (const auto& [pid, n] : t.pids) r.pids[pid] += n;
    r.connections_opened += t.connections_opened;
    examples.insert(examples.end(), t.examples.begin(), t.examples.end());
    r.samples.insert(r.samples.end(), t.samples.begin(), t.samples.end());
    last = std::max(last, t.finished);
  }
  std::sort(examples.begin(), examples.end(),
            [](const Example& a, const Example& b) { return a.at < b.at; });
  for (size_t i = 0; i < examples.size() && i < kMaxExamples; ++i) {
    r.failure_examples.push_back(examples[i].text);
  }
  std::sort(r.samples.begin(), r.samples.end(),
            [](const Sample& a, const Sample& b) { return a.start < b.start; });
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(last - shared.started);
  return r;
}

StartResult LoadRun::start(LoadOptions options) {
  if (std::string why = validate(options); !why.empty()) return StartResult{nullptr, why, 0};
  auto endpoint = parse_endpoint(options.address);
  if (auto* why = std::get_if<std::string>(&endpoint)) return StartResult{nullptr, *why, 0};
  auto state = std::make_unique<State>();
  Shared& s = state->shared;
  s.endpoint = std::get<Endpoint>(std::move(endpoint));
  s.request = build_request(options);
  s.options = std::move(options);
  s.started = Clock::now();
  const auto limit = s.options.duration.count() > 0
                         ? std::min(s.options.duration, s.options.max_duration)
                         : s.options.max_duration;
  s.limit = s.started + limit;
  s.end = s.limit;
  std::unique_ptr<LoadRun> run(new LoadRun(std::move(state)));
  if (int err = run->state_->spawn(); err != 0) {
    return StartResult{nullptr, fmt::format("cannot start threads: {}", errno_text(err)), err};
  }
  return StartResult{std::move(run), "", 0};
}

LoadRun::LoadRun(std::unique_ptr<State> state) : state_(std::move(state)) {}

LoadRun::~LoadRun() {
  stop();
  state_->join_all();
}

void LoadRun::stop() {
  state_->shared.stop.store(true);
}

void LoadRun::end_at(std::chrono::steady_clock::time_point end) {
  state_->shared.end.store(std::min(end, state_->shared.limit));
}

std::chrono::steady_clock::time_point LoadRun::started() const {
  return state_->shared.started;
}

uint64_t LoadRun::completed() const {
  return state_->shared.completed.load(std::memory_order_relaxed);
}

uint64_t LoadRun::failed() const {
  return state_->shared.failed.load(std::memory_order_relaxed);
}

bool LoadRun::has_served(int pid) const {
  std::lock_guard lock(state_->shared.seen_mutex);
  return state_->shared.seen.count(pid) > 0;
}

LoadResult LoadRun::wait() {
  if (!state_->result) {
    state_->join_all();
    state_->result = state_->merge();
  }
  return *state_->result;
}

}  // namespace load

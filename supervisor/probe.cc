// One readiness-probe attempt on the loop: a tcp connect, or an http GET and
// the judgement of its answer (parsed by http_answer.cc).
#include "probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "duration.h"
#include "unique_fd.h"
#include "unix_address.h"

namespace baton {
namespace {

/// libuv's text for a negative error code: "connection refused".
std::string uv_text(int rc) {
  char text[128];
  uv_strerror_r(rc, text, sizeof text);
  return text;
}

/// Whole milliseconds since `since`.
int64_t ms_since(Clock::time_point since) {
  return std::chrono::duration_cast<Millis>(Clock::now() - since).count();
}

/// Whether `text` can go into a request line or header as it is.
bool fits_in_header(std::string_view text) {
  return std::none_of(text.begin(), text.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

/// The sockaddr of a tcp target.
void tcp_sockaddr(const SocketAddress& target, sockaddr_storage& storage) {
  storage = {};
  if (target.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, target.ip.data(), sizeof in6->sin6_addr);
    in6->sin6_port = htons(target.port);
    return;
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
  in4->sin_family = AF_INET;
  std::memcpy(&in4->sin_addr, target.ip.data(), sizeof in4->sin_addr);
  in4->sin_port = htons(target.port);
}

/// Binds `fd` to the numeric address `source`, port 0, of `family`.
Status bind_source(int fd, int family, const std::string& source) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  void* ip = nullptr;
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    ip = &in6->sin6_addr;
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    ip = &in4->sin_addr;
    length = sizeof *in4;
  }
  if (inet_pton(family, source.c_str(), ip) != 1) {
    return error(fmt::format("source address {} is not an {} address", source,
                             family == AF_INET6 ? "IPv6" : "IPv4"));
  }
  // The port is chosen at connect(), knowing the destination, rather than at
  // bind(), which would reserve an ephemeral port for every attempt.
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    return error(fmt::format("cannot bind source address {}: {}", source, uv_text(-errno)));
  }
  return {};
}

/// One probe attempt and its libuv handles (the timeout timer and the
/// connection). It deletes itself once it is both finished or cancelled and
/// every handle's close callback has run, whichever comes last.
class ProbeAttempt {
 public:
  ProbeAttempt(uv_loop_t* loop, const ProbeSpec& spec, std::function<void(ProbeResult)> done);
  ProbeAttempt(const ProbeAttempt&) = delete;
  ProbeAttempt& operator=(const ProbeAttempt&) = delete;

  /// Arms the timeout and starts connecting.
  void start();
  /// The Pending was destroyed: never call back, close everything.
  void cancel();

 private:
  ~ProbeAttempt() = default;
  Status connect();
  Status connect_tcp();
  Status connect_unix();
  void fail_soon(std::string text);
  void send_request();
  void judge(AnswerEnd end, int read_error);
  ProbeResult verdict(const HttpAnswer& answer) const;
  void finish(bool passed, std::string text);
  void close_handles();
  void release_if_unused();

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&stream_); }

  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_connected(uv_connect_t* req, int status) noexcept;
  static void on_written(uv_write_t* req, int status) noexcept;
  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept;
  static void on_closed(uv_handle_t* handle) noexcept;

  uv_loop_t* loop_;
  ProbeSpec spec_;
  /// Empty once called, or once the Pending is gone.
  std::function<void(ProbeResult)> done_;
  /// "http /health", "tcp 127.0.0.1:8080": how summaries start.
  std::string name_;
  Clock::time_point started_ = Clock::now();

  /// The attempt's timeout; fired at once to report a failure found while
  /// starting (so that done_ is never called from inside start_probe).
  uv_timer_t timer_{};
  /// Set when the timer reports a failure rather than the timeout.
  std::optional<std::string> failure_;
  /// A uv_tcp_t for tcp targets, a uv_pipe_t for unix ones.
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } stream_{};
  bool stream_initialised_ = false;
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  std::string request_;
  /// Why sending the request failed; reported if no answer explains more.
  std::optional<std::string> write_error_;
  /// What the server answered so far, at most kProbeReadLimit bytes.
  std::string answer_;
  char buffer_[16384];

  /// Handles initialised whose close callback has not run yet.
  int open_handles_ = 0;
  /// done_ was called or the attempt was cancelled; handles are closing.
  bool finished_ = false;
  /// The Pending still exists.
  bool owned_ = true;
};

/// What start_probe returns: cancels the attempt when destroyed.
class PendingProbe final : public Pending {
 public:
  explicit PendingProbe(ProbeAttempt* attempt) : attempt_(attempt) {}
  ~PendingProbe() override { attempt_->cancel(); }
  PendingProbe(const PendingProbe&) = delete;
  PendingProbe& operator=(const PendingProbe&) = delete;

 private:
  /// Alive until cancel() (it waits for the Pending to go).
  ProbeAttempt* attempt_;
};

ProbeAttempt::ProbeAttempt(uv_loop_t* loop, const ProbeSpec& spec,
                           std::function<void(ProbeResult)> done)
    : loop_(loop), spec_(spec), done_(std::move(done)) {
  if (spec_.kind == ProbeSpec::Kind::kHttp) {
    if (spec_.http.path.empty()) spec_.http.path = "/";
    name_ = fmt::format("http {}", spec_.http.path);
  } else {
    name_ = fmt::format("{} {}", socket_kind_name(spec_.target.kind), spec_.target.to_string());
  }
}

void ProbeAttempt::start() {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  ++open_handles_;
  // The loop's cached time may be old (uv_spawn blocks until exec): the
  // timeout counts from now.
  uv_update_time(loop_);
  auto timeout = static_cast<uint64_t>(std::max<int64_t>(spec_.timeout.count(), 0));
  uv_timer_start(&timer_, &ProbeAttempt::on_timer, timeout, 0);
  if (Status connecting = connect(); !connecting) fail_soon(connecting.error().message);
}

Status ProbeAttempt::connect() {
  if (spec_.kind == ProbeSpec::Kind::kHttp &&
      (!fits_in_header(spec_.http.path) || !fits_in_header(spec_.http.host))) {
    return error("the path or host has spaces or control characters");
  }
  if (spec_.target.kind == SocketKind::kUnix) return connect_unix();
  if (spec_.target.kind == SocketKind::kTcp &&
      (spec_.target.family == AF_INET || spec_.target.family == AF_INET6)) {
    return connect_tcp();
  }
  return error("not a tcp or unix stream address");
}

Status ProbeAttempt::connect_tcp() {
  uv_tcp_init(loop_, &stream_.tcp);
  stream_.tcp.data = this;
  stream_initialised_ = true;
  ++open_handles_;
  // The socket is made here rather than by libuv so that it can be bound to
  // the source address first, the way steering tells probes from the public.
  int family = spec_.target.family;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return error(fmt::format("cannot create a socket: {}", uv_text(-errno)));
  if (!spec_.source.empty()) {
    if (Status bound = bind_source(fd.get(), family, spec_.source); !bound) return bound;
  }
  if (int rc = uv_tcp_open(&stream_.tcp, fd.get()); rc != 0) {
    return error(fmt::format("cannot use the socket: {}", uv_text(rc)));
  }
  (void)fd.release();  // the handle owns it now
  sockaddr_storage address;
  tcp_sockaddr(spec_.target, address);
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &stream_.tcp, reinterpret_cast<sockaddr*>(&address),
                          &ProbeAttempt::on_connected);
  if (rc != 0) return error(uv_text(rc));
  return {};
}

Status ProbeAttempt::connect_unix() {
  if (spec_.target.abstract) return error("abstract unix sockets are not probed");
  // uv_pipe_connect would silently cut a path too long for a sockaddr_un.
  if (Result<UnixAddress> address = unix_path_address(spec_.target.path, "probe target");
      !address) {
    return address.error();
  }
  uv_pipe_init(loop_, &stream_.pipe, 0);
  stream_.pipe.data = this;
  stream_initialised_ = true;
  ++open_handles_;
  connect_req_.data = this;
  uv_pipe_connect(&connect_req_, &stream_.pipe, spec_.target.path.c_str(),
                  &ProbeAttempt::on_connected);
  return {};
}

void ProbeAttempt::fail_soon(std::string text) {
  failure_ = std::move(text);
  uv_timer_start(&timer_, &ProbeAttempt::on_timer, 0, 0);
}

void ProbeAttempt::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ProbeAttempt*>(timer->data);
  if (self->failure_) return self->finish(false, std::move(*self->failure_));
  self->finish(false, fmt::format("timed out after {}", format_duration(self->spec_.timeout)));
}

void ProbeAttempt::on_connected(uv_connect_t* req, int status) noexcept {
  auto* self = static_cast<ProbeAttempt*>(req->data);
  if (self->finished_) return;  // cancelled: the handle is closing
  if (status < 0) return self->finish(false, uv_text(status));
  if (self->spec_.kind == ProbeSpec::Kind::kTcp) {
    return self->finish(true, fmt::format("connected in {}ms", ms_since(self->started_)));
  }
  self->send_request();
}

void ProbeAttempt::send_request() {
  const HttpCheck& http = spec_.http;
  // A unix path is no host name: servers that check Host accept "localhost".
  std::string host = !http.host.empty()                       ? http.host
                     : spec_.target.kind == SocketKind::kUnix ? "localhost"
                                                              : spec_.target.to_string();
  request_ = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: baton-probe\r\n\r\n",
      http.path, host);
  if (int rc = uv_read_start(stream(), &ProbeAttempt::on_alloc, &ProbeAttempt::on_read); rc != 0) {
    return finish(false, fmt::format("cannot read: {}", uv_text(rc)));
  }
  uv_buf_t buf = uv_buf_init(request_.data(), static_cast<unsigned>(request_.size()));
  write_req_.data = this;
  if (int rc = uv_write(&write_req_, stream(), &buf, 1, &ProbeAttempt::on_written); rc != 0) {
    return finish(false, fmt::format("cannot send the request: {}", uv_text(rc)));
  }
}

void ProbeAttempt::on_written(uv_write_t* req, int status) noexcept {
  auto* self = static_cast<ProbeAttempt*>(req->data);
  // A server may answer and close before it has read the request: the
  // reading side decides, and reports this only if it has nothing better.
  if (status < 0 && !self->finished_) {
    self->write_error_ = fmt::format("cannot send the request: {}", uv_text(status));
  }
}

void ProbeAttempt::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<ProbeAttempt*>(handle->data);
  // Never more than the read limit: reading stops when it is reached.
  size_t room = std::min(sizeof self->buffer_, kProbeReadLimit - self->answer_.size());
  *buf = uv_buf_init(self->buffer_, static_cast<unsigned>(room));
}

void ProbeAttempt::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<ProbeAttempt*>(stream->data);
  if (self->finished_ || n == 0) return;
  if (n > 0) {
    self->answer_.append(buf->base, static_cast<size_t>(n));
    bool capped = self->answer_.size() >= kProbeReadLimit;
    return self->judge(capped ? AnswerEnd::kCapped : AnswerEnd::kOpen, 0);
  }
  self->judge(AnswerEnd::kClosed, n == UV_EOF ? 0 : static_cast<int>(n));
}

void ProbeAttempt::judge(AnswerEnd end, int read_error) {
  HttpAnswer answer = parse_http_answer(answer_, end);
  switch (answer.state) {
    case HttpAnswer::State::kIncomplete:
      return;
    case HttpAnswer::State::kMalformed:
      // An answer cut short by a failure is that failure, not a bad server.
      if (read_error != 0) return finish(false, uv_text(read_error));
      if (answer_.empty() && write_error_) return finish(false, *write_error_);
      return finish(false, std::move(answer.problem));
    case HttpAnswer::State::kComplete: {
      ProbeResult result = verdict(answer);
      return finish(result.passed, std::move(result.summary));
    }
  }
}

/// Whether a complete answer passes, and the summary's end: "200 in 2ms".
ProbeResult ProbeAttempt::verdict(const HttpAnswer& answer) const {
  const HttpCheck& http = spec_.http;
  std::string text = fmt::format("{} in {}ms", answer.status, ms_since(started_));
  bool status_ok = http.status ? answer.status == *http.status : answer.status / 100 == 2;
  if (!status_ok) {
    if (http.status) text += fmt::format(", expected {}", *http.status);
    return {false, text};
  }
  if (!http.body.empty() && answer.body.find(http.body) == std::string::npos) {
    return {false, text + fmt::format(", body lacks \"{}\"", http.body)};
  }
  return {true, text};
}

void ProbeAttempt::finish(bool passed, std::string text) {
  if (finished_) return;
  finished_ = true;
  close_handles();
  // Moved out first: `done` may destroy the Pending, which clears done_. The
  // attempt itself lives on until the close callbacks have run.
  std::function<void(ProbeResult)> done = std::move(done_);
  done_ = nullptr;
  if (done) done(ProbeResult{passed, fmt::format("{}: {}", name_, text)});
}

void ProbeAttempt::cancel() {
  owned_ = false;
  done_ = nullptr;
  if (!finished_) {
    finished_ = true;
    close_handles();
  }
  release_if_unused();
}

void ProbeAttempt::close_handles() {
  auto close = [](uv_handle_t* handle) {
    if (!uv_is_closing(handle)) uv_close(handle, &ProbeAttempt::on_closed);
  };
  close(reinterpret_cast<uv_handle_t*>(&timer_));
  // Closing the connection cancels its pending connect and write requests:
  // their callbacks run (with UV_ECANCELED) before the close callback.
  if (stream_initialised_) close(reinterpret_cast<uv_handle_t*>(&stream_));
}

void ProbeAttempt::on_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<ProbeAttempt*>(handle->data);
  --self->open_handles_;
  self->release_if_unused();
}

void ProbeAttempt::release_if_unused() {
  if (!owned_ && open_handles_ == 0) delete this;
}

}  // namespace

std::unique_ptr<Pending> start_probe(uv_loop_t* loop, const ProbeSpec& spec,
                                     std::function<void(ProbeResult)> done) {
  auto* attempt = new ProbeAttempt(loop, spec, std::move(done));
  auto pending = std::make_unique<PendingProbe>(attempt);
  attempt->start();
  return pending;
}

}  // namespace baton

// The control socket's server side, in `baton run` (the client side is
// control_client.cc). It first checks that the socket's directory is one
// only its owner can change.
#include "control_server.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control_client.h"
#include "control_request.h"

namespace baton {
namespace {

/// Requests are small; a longer line is refused.
constexpr size_t kMaxRequest = 64 * 1024;
/// How long a client has to send its request line once accepted. A request
/// already dispatched (a reload waiting for READY) has no deadline.
constexpr uint64_t kRequestTimeoutMs = 5000;
/// At most this many connections at once, whatever the fd limit.
constexpr size_t kMaxConnections = 64;
/// Each kind of control log line is written at most once per interval.
constexpr uint64_t kLogIntervalMs = 5000;
/// Out of fds with nothing reserved to refuse with: retry accepting after.
constexpr uint64_t kAcceptRetryMs = 1000;
/// Connections accepted per readiness event, so one busy client cannot
/// starve the rest of the loop (the poll is level-triggered).
constexpr int kAcceptBurst = 64;

/// Creates the socket's directory owner-only if missing, checks it, and
/// clears a stale socket file.
Status prepare_path(const std::string& path) {
  std::string dir = directory_of(path);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0 && errno == ENOENT) {
    std::error_code ec;
    mode_t old = umask(0077);
    std::filesystem::create_directories(dir, ec);
    umask(old);
    if (ec) {
      return error(
          fmt::format("cannot create the control socket directory {}: {}", dir, ec.message()));
    }
  }
  if (Status s = check_control_directory(dir); !s) return s;
  if (lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) {
    return error(fmt::format("control socket {} exists and is not a socket", path));
  }
  if (connect_unix(path)) {
    return error(fmt::format(
        "another baton is already running with control socket {} (stop it, or give this one "
        "another `control` path)",
        path));
  }
  unlink(path.c_str());  // stale: left by a baton that did not stop cleanly
  return {};
}

/// A quarter of RLIMIT_NOFILE, at most kMaxConnections: idle clients must
/// not take the fds baton needs to start a generation or bind a socket.
size_t connection_cap(rlim_t* limit) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  *limit = rl.rlim_cur;
  if (rl.rlim_cur == RLIM_INFINITY) return kMaxConnections;
  return std::clamp<size_t>(rl.rlim_cur / 4, 1, kMaxConnections);
}

rlim_t fd_limit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/// Writes one reply line to a client that is about to be closed without a
/// ControlConnection. The socket is fresh, so a short line fits its buffer.
void send_refusal(int fd, const std::string& message) {
  std::string line = encode_control_message({{"ok", false}, {"error", message}}) + "\n";
  ssize_t n = send(fd, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)n;  // a client already gone is not told anything
}

UniqueFd open_reserve() {
  return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

std::string connections_text(uint64_t n) {
  return fmt::format("{} connection{}", n, n == 1 ? "" : "s");
}

}  // namespace

/// One accepted client. Deleted in its close callback (and once no reply
/// object refers to it).
class ControlConnection : public ControlReply,
                          public std::enable_shared_from_this<ControlConnection> {
 public:
  ControlConnection(uv_loop_t* loop, ControlServer::Handler& handler)
      : handler_(handler), accepted_at_(uv_now(loop)) {
    uv_pipe_init(loop, &pipe_, 0);
    holder_ = new Holder{&pipe_, nullptr};
    pipe_.data = holder_;
  }

  /// Takes the accepted socket and starts reading the request. On failure
  /// the fd is closed and the connection closes itself.
  void start(std::shared_ptr<ControlConnection> self, UniqueFd fd) {
    holder_->self = std::move(self);
    if (uv_pipe_open(&pipe_, fd.get()) != 0) return close();
    (void)fd.release();  // the pipe handle owns it now, closed by uv_close
    uv_read_start(stream(), on_alloc, on_read);
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }

  /// True until the request line has arrived (or the connection closed).
  bool waiting_for_request() const { return !dispatched_ && !closed_; }
  uint64_t deadline() const { return accepted_at_ + kRequestTimeoutMs; }
  /// True while the socket is open (until libuv's close callback).
  bool holds_fd() const { return !released_; }

  void event(const nlohmann::json& event) override { write(event); }
  bool open() const override { return !closed_ && !peer_gone_; }
  size_t queued_bytes() const override {
    return closed_ ? 0
                   : uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&pipe_));
  }

  void finish(const nlohmann::json& reply) override {
    write(reply);
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    uv_read_stop(stream());
    // Closing after pending writes: uv_close cancels writes, so shut the
    // write side down first and close when that completes.
    auto* req = new uv_shutdown_t;
    req->data = holder_;
    if (uv_shutdown(req, stream(), on_shutdown) != 0) {
      delete req;
      uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), on_closed);
    }
  }

 private:
  /// Keeps the connection alive while libuv holds the handle.
  struct Holder {
    uv_pipe_t* pipe;
    std::shared_ptr<ControlConnection> self;
  };
  struct WriteReq {
    uv_write_t req;
    std::string data;
  };

  void write(const nlohmann::json& message) {
    if (closed_) return;
    auto* w = new WriteReq{{}, encode_control_message(message) + "\n"};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, stream(), &buf, 1, on_written) != 0) {
      peer_gone_ = true;
      delete w;
    }
  }

  /// A write that failed (EPIPE, ECONNRESET) means the client is gone; one
  /// cancelled by the close (ECANCELED) says nothing new.
  static void on_written(uv_write_t* req, int status) noexcept {
    auto* holder = static_cast<Holder*>(req->handle->data);
    if (status < 0 && status != UV_ECANCELED) holder->self->peer_gone_ = true;
    delete reinterpret_cast<WriteReq*>(req);
  }

  static void on_shutdown(uv_shutdown_t* req, int) noexcept {
    auto* holder = static_cast<Holder*>(req->data);
    delete req;
    uv_close(reinterpret_cast<uv_handle_t*>(holder->pipe), on_closed);
  }

  static void on_closed(uv_handle_t* handle) noexcept {
    auto* holder = static_cast<Holder*>(handle->data);
    holder->self->released_ = true;
    delete holder;  // drops the last reference held for libuv
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<Holder*>(handle->data)->self.get();
    *buf = uv_buf_init(self->read_buf_, sizeof self->read_buf_);
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
    auto self = static_cast<Holder*>(stream->data)->self;
    if (n < 0) {
      // The client went away (or half-closed). A pending request keeps its
      // reply object; writes to a closed connection are dropped.
      uv_read_stop(stream);
      if (n != UV_EOF) self->peer_gone_ = true;
      if (n != UV_EOF || !self->dispatched_) self->close();
      return;
    }
    self->input_.append(buf->base, static_cast<size_t>(n));
    self->maybe_dispatch();
  }

  void maybe_dispatch() {
    size_t nl = input_.find('\n');
    if (nl == std::string::npos) {
      if (input_.size() > kMaxRequest) {
        finish(
            {{"ok", false},
             {"error", fmt::format("request too long: no newline within {} bytes", kMaxRequest)}});
      }
      return;
    }
    uv_read_stop(stream());
    dispatched_ = true;
    nlohmann::json request = nlohmann::json::parse(input_.substr(0, nl), nullptr, false);
    input_.clear();
    if (request.is_discarded()) {
      return finish({{"ok", false}, {"error", "the request is not valid JSON"}});
    }
    dispatch(request);
  }

  /// Runs the handler. It should not throw, but libuv callbacks are
  /// noexcept: an exception would end baton through std::terminate, so it
  /// becomes an error reply and an error line instead.
  void dispatch(const nlohmann::json& request) {
    std::string what;
    try {
      handler_(request, shared_from_this());
      return;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    spdlog::error("control socket: internal error while handling a request: {}", what);
    finish({{"ok", false}, {"error", fmt::format("internal error in baton: {}", what)}});
  }

  uv_pipe_t pipe_{};
  Holder* holder_;
  ControlServer::Handler& handler_;
  /// Loop time (ms) of the accept; the request line is due kRequestTimeoutMs later.
  uint64_t accepted_at_;
  std::string input_;
  bool dispatched_ = false;
  bool closed_ = false;
  /// The client reset the connection (not a half-close after its request).
  bool peer_gone_ = false;
  bool released_ = false;
  char read_buf_[4096];
};

Result<std::unique_ptr<ControlServer>> ControlServer::open(uv_loop_t* loop, const std::string& path,
                                                           Handler handler) {
  if (auto addr = control_address(path); !addr) return addr.error();
  if (auto s = prepare_path(path); !s) return s.error();
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->loop_ = loop;
  server->path_ = path;
  server->handler_ = std::move(handler);
  if (Status s = server->listen_on(path); !s) return s.error();
  rlim_t limit = 0;
  server->max_connections_ = connection_cap(&limit);
  if (server->max_connections_ < kMaxConnections) {
    spdlog::info("control socket: at most {} at once (a quarter of RLIMIT_NOFILE {})",
                 connections_text(server->max_connections_), limit);
  }
  server->timed_out_ = {
      "closed ", fmt::format(" that sent no complete request within {}s", kRequestTimeoutMs / 1000),
      false};
  server->over_cap_ = {
      "refused ", fmt::format(": too many control connections ({} open)", server->max_connections_),
      true};
  server->out_of_fds_ = {"refused ", "", true};
  return server;
}

/// Binds and listens on `path` (owner-only), and starts watching it.
Status ControlServer::listen_on(const std::string& path) {
  auto addr = control_address(path);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error("cannot create the control socket");
  // Owner-only: the socket file is created under umask 077 (mode 0700).
  mode_t old = umask(0077);
  int rc = bind(fd.get(), addr->get(), addr->length);
  umask(old);
  if (rc != 0) return sys_error(fmt::format("cannot listen on control socket {}", path));
  if (listen(fd.get(), static_cast<int>(kMaxConnections)) != 0) {
    Error e = sys_error(fmt::format("cannot listen on control socket {}", path));
    unlink(path.c_str());
    return e;
  }
  listen_fd_ = std::move(fd);
  reserve_fd_ = open_reserve();
  // Accepting is done here rather than by uv_listen: when accept fails with
  // EMFILE, libuv closes every waiting client without telling its callback,
  // so baton could neither log it nor tell the clients why.
  uv_poll_init(loop_, &poll_, listen_fd_.get());
  poll_.data = this;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  listening_ = true;
  uv_poll_start(&poll_, UV_READABLE, on_readable);
  return {};
}

ControlServer::~ControlServer() = default;

void ControlServer::close() {
  if (!listening_) return;
  listening_ = false;
  flush(timed_out_, true);
  flush(over_cap_, true);
  flush(out_of_fds_, true);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);  // before its fd is closed
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  listen_fd_.reset();
  reserve_fd_.reset();
  unlink(path_.c_str());
}

void ControlServer::close_connections() {
  for (auto& weak : connections_) {
    if (auto conn = weak.lock()) conn->close();
  }
  connections_.clear();
}

void ControlServer::on_readable(uv_poll_t* poll, int status, int) noexcept {
  auto* server = static_cast<ControlServer*>(poll->data);
  if (status < 0) {
    spdlog::warn("control socket: cannot wait for connections: {}", uv_strerror(status));
    return;
  }
  server->accept_pending();
  server->schedule();
}

void ControlServer::accept_pending() {
  for (int i = 0; i < kAcceptBurst && listening_; ++i) {
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.valid()) {
      admit(std::move(fd));
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) {
      refuse_without_fds(errno);
    } else if (errno != EAGAIN) {
      spdlog::warn("control socket: accept failed: {}", std::strerror(errno));
    }
    return;
  }
}

size_t ControlServer::open_connections() const {
  return static_cast<size_t>(
      std::count_if(connections_.begin(), connections_.end(), [](const auto& weak) {
        auto conn = weak.lock();
        return conn && conn->holds_fd();
      }));
}

/// Starts serving an accepted client, or refuses it at once when the cap
/// is reached: the client learns why instead of waiting.
void ControlServer::admit(UniqueFd fd) {
  std::erase_if(connections_, [](const auto& weak) {
    auto conn = weak.lock();
    return !conn || !conn->holds_fd();
  });
  if (connections_.size() >= max_connections_) {
    send_refusal(fd.get(),
                 fmt::format("too many control connections ({} open); try again in a few seconds",
                             max_connections_));
    note(over_cap_, 1);
    return;
  }
  auto conn = std::make_shared<ControlConnection>(loop_, handler_);
  connections_.push_back(conn);
  conn->start(conn, std::move(fd));
}

/// Out of fds: accept each waiting client on the reserved fd's slot, tell
/// it why, close it, and take the slot back (libuv's trick, with a reply).
/// Without a reserve the clients stay queued and accepting pauses briefly,
/// since the level-triggered poll would otherwise spin.
void ControlServer::refuse_without_fds(int err) {
  std::string why = fmt::format("{} (RLIMIT_NOFILE {})", std::strerror(err), fd_limit());
  out_of_fds_.suffix = fmt::format(": cannot accept: {}", why);
  uint64_t refused = 0;
  while (reserve_fd_.valid()) {
    reserve_fd_.reset();
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.valid())
      send_refusal(fd.get(), fmt::format("baton cannot take this connection: {}", why));
    bool accepted = fd.valid();
    fd.reset();
    reserve_fd_ = open_reserve();
    if (!accepted) break;
    ++refused;
  }
  if (refused > 0) note(out_of_fds_, refused);
  if (!reserve_fd_.valid()) {
    if (refused == 0) note(out_of_fds_, 1);
    accept_paused_until_ = uv_now(loop_) + kAcceptRetryMs;
    uv_poll_stop(&poll_);
  }
}

void ControlServer::on_timer(uv_timer_t* timer) noexcept {
  auto* server = static_cast<ControlServer*>(timer->data);
  server->close_idle_connections();
  server->flush(server->timed_out_, false);
  server->flush(server->over_cap_, false);
  server->flush(server->out_of_fds_, false);
  if (server->accept_paused_until_ != 0 && uv_now(server->loop_) >= server->accept_paused_until_) {
    server->accept_paused_until_ = 0;
    if (!server->reserve_fd_.valid()) server->reserve_fd_ = open_reserve();
    uv_poll_start(&server->poll_, UV_READABLE, on_readable);
  }
  server->schedule();
}

/// Closes the connections whose request line is overdue.
void ControlServer::close_idle_connections() {
  uint64_t now = uv_now(loop_);
  uint64_t closed = 0;
  for (auto& weak : connections_) {
    auto conn = weak.lock();
    if (conn && conn->waiting_for_request() && conn->deadline() <= now) {
      conn->close();
      ++closed;
    }
  }
  if (closed > 0) note(timed_out_, closed);
}

void ControlServer::note(HeldLogLine& throttle, uint64_t count) {
  throttle.held += count;
  flush(throttle, false);
}

/// Logs the held events if the quiet period is over (or `force`).
void ControlServer::flush(HeldLogLine& throttle, bool force) {
  uint64_t now = uv_now(loop_);
  if (throttle.held == 0 || (!force && now < throttle.quiet_at)) return;
  std::string line = fmt::format("control socket: {}{}{}", throttle.prefix,
                                 connections_text(throttle.held), throttle.suffix);
  if (throttle.warning) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
  throttle.held = 0;
  throttle.quiet_at = now + kLogIntervalMs;
}

/// Arms the timer for the earliest of: a request deadline, a held log
/// line, the end of an accept pause.
void ControlServer::schedule() {
  if (!listening_) return;
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& weak : connections_) {
    auto conn = weak.lock();
    if (conn && conn->waiting_for_request()) next = std::min(next, conn->deadline());
  }
  for (const HeldLogLine* t : {&timed_out_, &over_cap_, &out_of_fds_}) {
    if (t->held > 0) next = std::min(next, t->quiet_at);
  }
  if (accept_paused_until_ != 0) next = std::min(next, accept_paused_until_);
  if (next == std::numeric_limits<uint64_t>::max()) {
    uv_timer_stop(&timer_);
    return;
  }
  uint64_t now = uv_now(loop_);
  uv_timer_start(&timer_, on_timer, next > now ? next - now : 0, 0);
}

}  // namespace baton

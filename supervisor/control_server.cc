// The control socket: a libuv server in baton run, a blocking client in the
// other commands.
#include "control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control_request.h"
#include "unique_fd.h"

namespace baton {
namespace {

/// Requests are small; a longer line is refused.
constexpr size_t kMaxRequest = 64 * 1024;

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() + 1 > sizeof addr.sun_path) {
    return error(fmt::format("control socket path {} is longer than {} bytes", path,
                             sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

/// Connects a blocking stream socket to `path`; errors keep their errno.
Result<UniqueFd> connect_unix(const std::string& path) {
  auto addr = unix_address(path);
  if (!addr) return addr.error();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error("cannot create a socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0) {
    return sys_error(fmt::format("cannot reach baton at {}", path));
  }
  return fd;
}

Status prepare_path(const std::string& path) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    mode_t old = umask(0077);
    std::filesystem::create_directories(dir, ec);
    umask(old);
    if (ec) {
      return error(fmt::format("cannot create the control socket directory {}: {}", dir.string(),
                               ec.message()));
    }
  }
  struct stat st;
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

}  // namespace

/// One accepted client. Deleted in its close callback.
class ControlConnection : public ControlReply,
                          public std::enable_shared_from_this<ControlConnection> {
 public:
  ControlConnection(uv_loop_t* loop, ControlServer::Handler& handler) : handler_(handler) {
    uv_pipe_init(loop, &pipe_, 0);
    holder_ = new Holder{&pipe_, nullptr};
    pipe_.data = holder_;
  }

  void start(std::shared_ptr<ControlConnection> self) {
    holder_->self = std::move(self);
    uv_read_start(stream(), on_alloc, on_read);
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }

  void event(const nlohmann::json& event) override { write(event); }

  void finish(const nlohmann::json& reply) override {
    write(reply);
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
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
    if (uv_write(&w->req, stream(), &buf, 1,
                 [](uv_write_t* r, int) noexcept { delete reinterpret_cast<WriteReq*>(r); }) != 0) {
      delete w;
    }
  }

  static void on_shutdown(uv_shutdown_t* req, int) noexcept {
    auto* holder = static_cast<Holder*>(req->data);
    delete req;
    uv_close(reinterpret_cast<uv_handle_t*>(holder->pipe), on_closed);
  }

  static void on_closed(uv_handle_t* handle) noexcept {
    auto* holder = static_cast<Holder*>(handle->data);
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
      if (n != UV_EOF || !self->dispatched_) self->close();
      return;
    }
    self->input_.append(buf->base, static_cast<size_t>(n));
    self->maybe_dispatch();
  }

  void maybe_dispatch() {
    size_t nl = input_.find('\n');
    if (nl == std::string::npos) {
      if (input_.size() > kMaxRequest) finish({{"ok", false}, {"error", "request too long"}});
      return;
    }
    uv_read_stop(stream());
    dispatched_ = true;
    nlohmann::json request = nlohmann::json::parse(input_.substr(0, nl), nullptr, false);
    if (request.is_discarded() || !request.is_object()) {
      return finish({{"ok", false}, {"error", "request is not a JSON object"}});
    }
    handler_(request, shared_from_this());
  }

  uv_pipe_t pipe_{};
  Holder* holder_;
  ControlServer::Handler& handler_;
  std::string input_;
  bool dispatched_ = false;
  bool closed_ = false;
  char read_buf_[4096];
};

Result<std::unique_ptr<ControlServer>> ControlServer::open(uv_loop_t* loop, const std::string& path,
                                                           Handler handler) {
  if (auto addr = unix_address(path); !addr) return addr.error();
  if (auto s = prepare_path(path); !s) return s.error();
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->loop_ = loop;
  server->path_ = path;
  server->handler_ = std::move(handler);
  uv_pipe_init(loop, &server->pipe_, 0);
  server->pipe_.data = server.get();
  server->listening_ = true;
  // Owner-only: the socket file is created under umask 077 (mode 0700).
  mode_t old = umask(0077);
  int rc = uv_pipe_bind(&server->pipe_, path.c_str());
  umask(old);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server->pipe_), 64,
                   &ControlServer::on_connection);
  }
  if (rc != 0) {
    Error e = sys_error(fmt::format("cannot listen on control socket {}", path), -rc);
    server->close();
    return e;
  }
  return server;
}

ControlServer::~ControlServer() = default;

void ControlServer::close() {
  if (!listening_) return;
  listening_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
  unlink(path_.c_str());
}

void ControlServer::close_connections() {
  for (auto& weak : connections_) {
    if (auto conn = weak.lock()) conn->close();
  }
  connections_.clear();
}

void ControlServer::on_connection(uv_stream_t* stream, int status) noexcept {
  auto* server = static_cast<ControlServer*>(stream->data);
  if (status < 0) {
    spdlog::warn("control socket: accept failed: {}", uv_strerror(status));
    return;
  }
  auto conn = std::make_shared<ControlConnection>(server->loop_, server->handler_);
  std::erase_if(server->connections_, [](const auto& weak) { return weak.expired(); });
  server->connections_.push_back(conn);
  if (uv_accept(stream, conn->stream()) != 0) {
    conn->start(conn);
    conn->close();
    return;
  }
  conn->start(conn);
}

Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       const std::function<void(const nlohmann::json&)>& on_event) {
  auto fd = connect_unix(path);
  if (!fd) {
    Error e = fd.error();
    if (e.sys_errno == ENOENT || e.sys_errno == ECONNREFUSED) e.message += " (is baton running?)";
    return e;
  }
  std::string line = request.dump() + "\n";
  if (send(fd->get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return sys_error(fmt::format("cannot send the request to baton at {}", path));
  }
  std::string input;
  char buf[4096];
  for (;;) {
    size_t nl;
    while ((nl = input.find('\n')) != std::string::npos) {
      auto message = nlohmann::json::parse(input.substr(0, nl), nullptr, false);
      input.erase(0, nl + 1);
      if (message.is_discarded() || !message.is_object()) {
        return error(fmt::format("baton at {} sent a malformed reply", path));
      }
      if (message.contains("ok")) return message;
      on_event(message);
    }
    ssize_t n = recv(fd->get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(fmt::format("lost the connection to baton at {}", path));
    if (n == 0)
      return error(fmt::format("baton at {} closed the connection without a reply", path));
    input.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace baton

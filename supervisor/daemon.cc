// The `baton run` process: one libuv loop holding the listening sockets, the
// notify and control servers, signal handlers and the supervisor.
#include "daemon.h"

#include <linux/close_range.h>
#include <signal.h>
#include <unistd.h>

#include <random>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "control_server.h"
#include "exit_codes.h"
#include "notify_server.h"
#include "shim_support.h"
#include "supervisor.h"

namespace baton {
namespace {

/// Everything one `baton run` owns, closed in order when the supervisor stops.
class Daemon {
 public:
  Daemon(uv_loop_t* loop, const Config& config) : loop_(loop), config_(config), manager_(loop) {}

  Status start();
  void shutdown();

 private:
  Result<GenerationPlan> load_plan();
  void handle_control(const nlohmann::json& request, std::shared_ptr<ControlReply> reply);
  void watch_signal(uv_signal_t& handle, int signum);
  void on_signal(int signum);
  void on_stopped();

  uv_loop_t* loop_;
  /// The config baton was started with; a reload re-reads config_.file
  /// (a config built from flags is reused as it is).
  const Config config_;
  SocketSet sockets_;
  ManagerNotifier manager_;
  std::unique_ptr<NotifyServer> notify_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Supervisor> supervisor_;
  uv_signal_t sigterm_{}, sigint_{}, sighup_{};
  std::vector<std::shared_ptr<ControlReply>> stop_replies_;
};

std::string notify_socket_name() {
  std::random_device rd;
  return fmt::format("baton/{}/{:08x}/notify", getpid(), rd());
}

void warn_reuseport(const Config& config) {
  for (const SocketSpec& spec : config.sockets) {
    if (!spec.reuseport) continue;
    spdlog::warn(
        "socket {}: reuseport is on: each socket copy gets its own accept queue, and "
        "connections queued on an exiting copy are reset",
        spec.name);
  }
}

/// Shim mode: refuses programs the shim cannot reach, and finds the library.
Status prepare_shim(Config& config) {
  if (!config.shim) return {};
  if (Status s = check_shim_target(config.command[0]); !s) return s;
  auto library = find_shim_library();
  if (!library) return library.error();
  config.shim_library = *library;
  return {};
}

Result<GenerationPlan> Daemon::load_plan() {
  Config config = config_;
  if (!config_.file.empty() && supervisor_) {  // the first plan uses the config as read
    auto loaded = load_config(config_.file);
    if (!loaded) return loaded.error();
    config = std::move(*loaded);
    if (config.control_path != config_.control_path) {
      spdlog::warn("control: the new path {} takes effect when baton restarts; still using {}",
                   config.control_path, config_.control_path);
      config.control_path = config_.control_path;
    }
  }
  warn_reuseport(config);
  if (Status s = prepare_shim(config); !s) return s.error();
  auto sockets = sockets_.prepare(config.sockets);
  if (!sockets) return sockets.error();
  return GenerationPlan{std::make_shared<const Config>(std::move(config)), std::move(*sockets)};
}

Status Daemon::start() {
  auto first = load_plan();
  if (!first) return first.error();
  auto notify = NotifyServer::open(loop_, notify_socket_name(), [this](pid_t pid, const auto& m) {
    if (supervisor_) supervisor_->handle_notify(pid, m);
  });
  if (!notify) return notify.error();
  notify_ = std::move(*notify);
  auto control =
      ControlServer::open(loop_, config_.control_path,
                          [this](const nlohmann::json& req, std::shared_ptr<ControlReply> reply) {
                            handle_control(req, std::move(reply));
                          });
  if (!control) return control.error();
  control_ = std::move(*control);
  for (const SharedSocket& s : first->sockets) {
    spdlog::info("socket {}: {} bound to {}", s->spec().name, s->spec().url, s->bound_address());
  }
  spdlog::info("control socket: {}", config_.control_path);
  supervisor_ = std::make_unique<Supervisor>(loop_, std::move(*first), notify_->socket_env(),
                                             manager_, [this] { return load_plan(); });
  watch_signal(sigterm_, SIGTERM);
  watch_signal(sigint_, SIGINT);
  watch_signal(sighup_, SIGHUP);
  supervisor_->start();
  return {};
}

void Daemon::watch_signal(uv_signal_t& handle, int signum) {
  uv_signal_init(loop_, &handle);
  handle.data = this;
  uv_signal_start(
      &handle,
      [](uv_signal_t* h, int sig) noexcept { static_cast<Daemon*>(h->data)->on_signal(sig); },
      signum);
}

void Daemon::on_signal(int signum) {
  if (signum == SIGHUP) {
    spdlog::info("SIGHUP: reloading");
    supervisor_->reload(ReloadRequest{});
    return;
  }
  spdlog::info("{}: stopping", signal_name(signum));
  supervisor_->stop([this] { on_stopped(); });
}

void Daemon::handle_control(const nlohmann::json& request, std::shared_ptr<ControlReply> reply) {
  std::string command = request.value("command", "");
  if (command == "status") {
    reply->finish({{"ok", true}, {"status", supervisor_->status()}});
  } else if (command == "reload") {
    spdlog::info("reload requested on the control socket");
    supervisor_->reload(ReloadRequest{std::move(reply), request.value("wait", false)});
  } else if (command == "stop") {
    spdlog::info("stop requested on the control socket");
    reply->event({{"event", "stopping"}});
    stop_replies_.push_back(std::move(reply));
    supervisor_->stop([this] { on_stopped(); });
  } else {
    reply->finish({{"ok", false}, {"error", fmt::format("unknown command \"{}\"", command)}});
  }
}

void Daemon::on_stopped() {
  for (auto& reply : stop_replies_) reply->finish({{"ok", true}, {"event", "stopped"}});
  stop_replies_.clear();
  shutdown();
}

void Daemon::shutdown() {
  if (control_) {
    control_->close();
    control_->close_connections();
  }
  if (notify_) notify_->close();
  manager_.close();
  for (uv_signal_t* h : {&sigterm_, &sigint_, &sighup_}) {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(h))) {
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    }
  }
}

}  // namespace

void setup_logging() {
  auto logger = spdlog::stderr_color_mt("baton");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e baton[%P] %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::flush_on(spdlog::level::trace);
}

int run_daemon(const Config& config) {
  signal(SIGPIPE, SIG_IGN);
  // Fds baton inherited (from a shell, a test runner) must not reach the
  // app: only fds 0-2 and the listed sockets cross uv_spawn's exec.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = kExitOk;
  {
    Daemon daemon(&loop, config);
    if (Status s = daemon.start(); !s) {
      spdlog::critical("{}", s.error().message);
      daemon.shutdown();
      code = kExitSystem;  // a socket could not be bound or served
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&loop) != 0) spdlog::error("internal: handles left open at exit");
  return code;
}

}  // namespace baton

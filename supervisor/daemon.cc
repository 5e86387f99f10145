// The `baton run` process: one libuv loop holding the listening sockets, the
// notify and control servers, signal handlers and the supervisor.
#include "daemon.h"

#include <linux/close_range.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "control_client.h"
#include "control_request.h"
#include "control_server.h"
#include "duration.h"
#include "environment.h"
#include "exit_codes.h"
#include "file_util.h"
#include "leftover_app.h"
#include "log_queue.h"
#include "log_ring.h"
#include "log_stream.h"
#include "manager_notifier.h"
#include "metrics.h"
#include "notify_server.h"
#include "orphan_reaper.h"
#include "reload_reply.h"
#include "shim_support.h"
#include "supervisor.h"
#include "uv_os.h"

extern char** environ;

namespace baton {
namespace {

/// Lines stderr's queue dropped so far (defined beside the sink, below).
uint64_t log_lines_dropped_to_stderr();

/// Everything one `baton run` owns, closed in order when the supervisor
/// stops. It tells the service manager what the lifecycle reports.
class Daemon final : public LifecycleListener {
 public:
  Daemon(uv_loop_t* loop, const Config& config)
      : loop_(loop), config_(config), os_(loop), manager_(loop) {}

  Status start();
  void shutdown();

 private:
  /// The config re-read (or `snapshot`, a release rollback's) with its
  /// sockets prepared.
  Result<GenerationPlan> load_plan(std::shared_ptr<const Config> snapshot = nullptr);
  void handle_control(const nlohmann::json& request, std::shared_ptr<ControlReply> reply);
  void watch_signal(uv_signal_t& handle, int signum);
  void on_signal(int signum);
  void on_stopped();
  /// Takes the sockets over from an app a dead baton left, when that is
  /// why binding failed.
  Result<GenerationPlan> take_over(Error bind_error);
  void drain_leftover(std::function<void()> then);
  void store_sockets(const std::vector<SharedSocket>& sockets, bool serving);
  void switched(const std::vector<SharedSocket>& serving) override { store_sockets(serving, true); }
  /// [metrics] file: writes it, and again every interval.
  void write_metrics_file();

  // LifecycleListener
  void serving(bool first) override;
  void reloading() override { manager_.notify("RELOADING=1"); }
  void stopping() override { manager_.notify("STOPPING=1"); }
  void status_changed(const StatusSnapshot& status) override {
    manager_.notify("STATUS=" + status_text(status));
  }

  uv_loop_t* loop_;
  /// The config baton was started with; a reload re-reads config_.file
  /// (a config built from flags is reused as it is).
  const Config config_;
  SocketSet sockets_;
  /// The per-generation listeners in systemd's fd store.
  std::vector<std::weak_ptr<ListenSocket>> stored_;
  UvOs os_;
  ManagerNotifier manager_;
  std::unique_ptr<NotifyServer> notify_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Supervisor> supervisor_;
  /// An app left serving by a baton that died, whose sockets this one took
  /// over; drained once generation 1 is ready (or at stop).
  std::unique_ptr<LeftoverDrain> leftover_;
  uv_signal_t sigterm_{}, sigint_{}, sighup_{};
  /// SIGCHLD, watched only when baton adopts orphans (PID 1, subreaper).
  uv_signal_t sigchld_{};
  std::vector<std::shared_ptr<ControlReply>> stop_replies_;
  /// Set when baton stops: its sockets then stay in systemd's fd store, so
  /// a restarted baton gets them back.
  bool stopping_ = false;
  std::unique_ptr<Timer> metrics_timer_;
  /// The last failure to write the metrics file, logged once until it changes.
  std::string metrics_error_;
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

/// http and tcp probes must reach the new generation alone: refused when
/// its probed socket is shared (taken from systemd, say), never sent to the
/// shared port.
Status check_probe_reach(const Config& config, const std::vector<SharedSocket>& sockets) {
  if (!config.ready.http && !config.ready.tcp) return {};
  std::optional<size_t> i = probed_socket_index(config);
  if (!i || *i >= sockets.size()) return error("ready: no stream socket to probe");
  if (auto target = sockets[*i]->probe_target(); !target) {
    return error(fmt::format(
        "ready.{}: cannot probe the new generation alone on socket {}: {}; use an exec probe or "
        "READY=1",
        config.ready.http ? "http" : "tcp", config.sockets[*i].name, target.error().message));
  }
  return {};
}

/// Shim mode: finds the library (check_runnable has refused the programs
/// the shim cannot reach).
Status prepare_shim(Config& config) {
  if (!config.shim) return {};
  auto library = find_shim_library();
  if (!library) return library.error();
  config.shim_library = *library;
  return {};
}

Result<GenerationPlan> Daemon::load_plan(std::shared_ptr<const Config> snapshot) {
  Config config = snapshot ? *snapshot : config_;
  // The first plan uses the config as read; a snapshot was checked when it
  // was read (its release's program is checked by the rollback).
  if (!snapshot && !config_.file.empty() && supervisor_) {
    auto loaded = load_config(config_.file);
    if (!loaded) return loaded.error();
    config = std::move(*loaded);
    if (config.control_path != config_.control_path) {
      spdlog::warn("control: the new path {} takes effect when baton restarts; still using {}",
                   config.control_path, config_.control_path);
      config.control_path = config_.control_path;
    }
    if (config.metrics_file != config_.metrics_file) {
      auto text = [](const std::optional<Config::MetricsFile>& m) {
        return m ? fmt::format("{} every {}", m->path, format_duration(m->interval))
                 : std::string("none");
      };
      spdlog::warn("metrics: the new file ({}) takes effect when baton restarts; still using {}",
                   text(config.metrics_file), text(config_.metrics_file));
    }
    // The same refusals as `baton check` and `baton run` (which checked
    // the first config), before anything is bound or started.
    if (Status s = check_runnable(config); !s) return s.error();
  }
  warn_reuseport(config);
  if (Status s = prepare_shim(config); !s) return s.error();
  auto sockets = sockets_.prepare(config.sockets, config.listeners);
  if (!sockets) return sockets.error();
  if (Status s = check_probe_reach(config, *sockets); !s) return s.error();
  if (supervisor_) store_sockets(*sockets, false);
  return GenerationPlan{std::make_shared<const Config>(std::move(config)), std::move(*sockets), {}};
}

/// Parks every socket not yet parked in systemd's fd store (FDSTORE=1,
/// FDNAME=its name), so that a restart or crash of baton itself closes no
/// listening socket: systemd hands them back as LISTEN_FDS. A socket that
/// closes while baton runs (dropped by a reload) is taken out again.
void Daemon::store_sockets(const std::vector<SharedSocket>& sockets, bool serving) {
  if (!manager_.connected()) return;
  for (const SharedSocket& s : sockets) {
    if (s->on_close) continue;  // already stored
    // A generation's own listener is stored once it serves, in place of
    // the one it replaces (systemd removes stored fds by name: the store
    // holds one socket per name, the one a restarted baton must serve on).
    bool own = s->shared_reason().empty();
    if (own && !serving) continue;
    if (own) {
      for (auto it = stored_.begin(); it != stored_.end();) {
        SharedSocket old = it->lock();
        if (old && old != s && old->spec().name == s->spec().name) {
          old->on_close = nullptr;
          manager_.notify("FDSTOREREMOVE=1\nFDNAME=" + old->spec().name);
        }
        it = !old || old->spec().name == s->spec().name ? stored_.erase(it) : it + 1;
      }
      stored_.push_back(s);
    }
    manager_.notify_with_fd(fmt::format("FDSTORE=1\nFDNAME={}", s->spec().name), s->fd());
    s->on_close = [this](const ListenSocket& closing) {
      if (!stopping_) manager_.notify("FDSTOREREMOVE=1\nFDNAME=" + closing.spec().name);
    };
  }
}

/// The sockets baton was started with (LISTEN_FDS: a .socket unit, or its
/// own fd store handed back by systemd), matched to config sockets by name
/// (FileDescriptorName=, FDNAME=) or else by type and address. An fd that
/// matches no config socket, or matches by name but is something else, is
/// an error.
Result<std::vector<SharedSocket>> adopt_inherited(const Config& config) {
  char** names = nullptr;
  int n = sd_listen_fds_with_names(1, &names);
  std::vector<SharedSocket> adopted;
  std::vector<bool> taken(config.sockets.size(), false);
  Status status;
  for (int i = 0; i < std::max(n, 0); ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    std::string name = names && names[i] ? names[i] : "unknown";
    std::string origin = fmt::format("fd {} (name \"{}\") from systemd", fd, name);
    UniqueFd owned(fd);
    size_t match = config.sockets.size();
    for (size_t j = 0; j < config.sockets.size() && match == config.sockets.size(); ++j) {
      if (!taken[j] && config.sockets[j].name == name) match = j;
    }
    for (size_t j = 0; j < config.sockets.size() && match == config.sockets.size(); ++j) {
      if (!taken[j] && ListenSocket::check_matches(fd, config.sockets[j], origin)) match = j;
    }
    if (match == config.sockets.size()) {
      if (status) status = error(fmt::format("{} matches no socket in the config", origin));
      continue;
    }
    taken[match] = true;
    auto sock = ListenSocket::adopt(config.sockets[match], std::move(owned), origin);
    if (!sock) {
      if (status) status = sock.error();
      continue;
    }
    spdlog::info("socket {}: taken from systemd ({})", config.sockets[match].name, origin);
    adopted.push_back(std::make_shared<ListenSocket>(std::move(*sock)));
  }
  if (names) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  if (!status) return status.error();
  return adopted;
}

Status Daemon::start() {
  // The control path is checked before any socket is bound: a refusal
  // then leaves nothing half started.
  if (auto addr = control_address(config_.control_path); !addr) return addr.error();
  if (Status s = check_control_directory(directory_of(config_.control_path));
      !s && s.error().sys_errno != ENOENT) {
    return s;
  }
  auto inherited = adopt_inherited(config_);
  if (!inherited) return inherited.error();
  sockets_.adopt(*inherited);  // the plan below finds them by address
  auto first = load_plan();
  if (!first && first.error().sys_errno == EADDRINUSE) first = take_over(first.error());
  if (!first) return first.error();
  store_sockets(first->sockets, true);
  auto control =
      ControlServer::open(loop_, config_.control_path,
                          [this](const nlohmann::json& req, std::shared_ptr<ControlReply> reply) {
                            handle_control(req, std::move(reply));
                          });
  if (!control) return control.error();
  control_ = std::move(*control);
  // After the control socket: it makes the directory, and holding it means
  // no other baton uses this notify path.
  std::string notify_address = config_.abstract_notify_socket
                                   ? "@" + notify_socket_name()
                                   : notify_socket_path(config_.control_path);
  auto notify = NotifyServer::open(loop_, notify_address, [this](pid_t pid, const auto& m) {
    if (supervisor_) supervisor_->handle_notify(pid, m);
  });
  if (!notify) return notify.error();
  notify_ = std::move(*notify);
  for (const SharedSocket& s : first->sockets) {
    if (s->shared_reason().empty()) {
      spdlog::info("socket {}: {} on {} (a listener per generation)", s->spec().name, s->spec().url,
                   s->bound_address());
    } else {
      spdlog::info("socket {}: {} on {} (shared by every generation: {})", s->spec().name,
                   s->spec().url, s->bound_address(), s->shared_reason());
    }
  }
  spdlog::info("control socket: {}; notify socket: {}", config_.control_path,
               notify_->socket_env());
  supervisor_ = std::make_unique<Supervisor>(
      os_, *this, std::move(*first), inherited_environment(environ), notify_->socket_env(),
      [this](std::shared_ptr<const Config> snapshot) { return load_plan(std::move(snapshot)); });
  if (leftover_) supervisor_->keep_group(leftover_->group());
  watch_signal(sigterm_, SIGTERM);
  watch_signal(sigint_, SIGINT);
  watch_signal(sighup_, SIGHUP);
  if (adopts_orphans()) {
    spdlog::info("baton is {}: it reaps the orphans it adopts",
                 getpid() == 1 ? "PID 1" : "a child subreaper");
    watch_signal(sigchld_, SIGCHLD);
  }
  supervisor_->start();
  if (config_.metrics_file) {
    spdlog::info("metrics: writing {} every {}", config_.metrics_file->path,
                 format_duration(config_.metrics_file->interval));
    metrics_timer_ = os_.timer([this] { write_metrics_file(); });
    write_metrics_file();
  }
  return {};
}

void Daemon::write_metrics_file() {
  const Config::MetricsFile& m = *config_.metrics_file;
  std::string text = metrics_text(supervisor_->snapshot(), log_lines_dropped_to_stderr(),
                                  log_lines_dropped_for_followers());
  if (Status s = replace_file(m.path, text, "metrics file"); !s) {
    if (s.error().message != metrics_error_) spdlog::warn("metrics: {}", s.error().message);
    metrics_error_ = s.error().message;
  } else if (!metrics_error_.empty()) {
    spdlog::info("metrics: {} written again", m.path);
    metrics_error_.clear();
  }
  metrics_timer_->arm(m.interval);
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
  if (signum == SIGCHLD) {
    int reaped = reap_orphans([this](pid_t pid) { return supervisor_->spawned(pid); });
    if (reaped) spdlog::debug("reaped {} orphaned process(es)", reaped);
    return;
  }
  if (signum == SIGHUP) {
    spdlog::info("SIGHUP: reloading");
    supervisor_->reload(ReloadRequest{});
    return;
  }
  spdlog::info("{}: stopping", signal_name(signum));
  supervisor_->stop([this] { on_stopped(); });
}

void Daemon::handle_control(const nlohmann::json& json, std::shared_ptr<ControlReply> reply) {
  auto request = parse_control_request(json);
  if (!request) {
    spdlog::info("control socket: refused a request: {}", request.error().message);
    return reply->finish({{"ok", false}, {"error", request.error().message}});
  }
  if (request->command == "status") {
    reply->finish({{"ok", true}, {"status", status_json(supervisor_->snapshot(), getpid())}});
  } else if (request->command == "logs") {
    int generation = request->generation.value_or(0);
    for (const LogLine& line : log_ring().last(request->lines.value_or(-1), generation)) {
      reply->event(log_event(line));
    }
    if (!request->follow) return reply->finish({{"ok", true}});
    follow_logs(std::move(reply), LogFilter{generation, 0, false});
  } else if (request->command == "metrics") {
    reply->finish({{"ok", true},
                   {"metrics", metrics_text(supervisor_->snapshot(), log_lines_dropped_to_stderr(),
                                            log_lines_dropped_for_followers())}});
  } else if (request->command == "reload") {
    spdlog::info("reload requested on the control socket");
    // The new generation's lines: those of any generation after the newest now.
    if (request->logs) follow_logs(reply, LogFilter{0, supervisor_->newest_generation() + 1, true});
    supervisor_->reload(ReloadRequest{std::make_shared<ReloadReply>(std::move(reply)),
                                      request->wait, request->canary});
  } else if (request->command == "promote") {
    spdlog::info("promote requested on the control socket");
    supervisor_->promote(
        ReloadRequest{std::make_shared<ReloadReply>(std::move(reply)), request->wait, {}});
  } else if (request->command == "rollback") {
    spdlog::info("rollback requested on the control socket");
    supervisor_->rollback(
        ReloadRequest{std::make_shared<ReloadReply>(std::move(reply)), request->wait, {}});
  } else {  // "stop"
    spdlog::info("stop requested on the control socket");
    reply->event({{"event", "stopping"}});
    stop_replies_.push_back(std::move(reply));
    supervisor_->stop([this] { on_stopped(); });
  }
}

Result<GenerationPlan> Daemon::take_over(Error bind_error) {
  auto leftover = take_over_leftover(config_.sockets);
  if (!leftover) return leftover.error();
  if (!*leftover) return bind_error;  // nobody baton could take it from
  sockets_.adopt((*leftover)->sockets, "taken over from an app a previous baton left running");
  leftover_ = std::make_unique<LeftoverDrain>(loop_, std::move(**leftover));
  return load_plan();
}

void Daemon::drain_leftover(std::function<void()> then) {
  if (!leftover_ || leftover_->gone()) {
    if (then) then();
    return;
  }
  leftover_->drain(config_.drain_signal, config_.drain_timeout, [this, then] {
    if (supervisor_) supervisor_->release_group(leftover_->group());
    if (then) then();
  });
}

void Daemon::serving(bool first) {
  manager_.notify("READY=1");
  if (first && leftover_) drain_leftover(nullptr);
}

void Daemon::on_stopped() {
  if (leftover_ && !leftover_->gone()) return drain_leftover([this] { on_stopped(); });
  for (auto& reply : stop_replies_) reply->finish({{"ok", true}, {"event", "stopped"}});
  stop_replies_.clear();
  shutdown();
}

void Daemon::shutdown() {
  stopping_ = true;
  // A stopped baton's numbers would read as current: the file goes with it.
  if (metrics_timer_) {
    metrics_timer_.reset();
    if (::unlink(config_.metrics_file->path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("metrics: cannot remove {}: {}", config_.metrics_file->path,
                   std::strerror(errno));
    }
  }
  stop_log_followers();
  if (control_) {
    control_->close();
    control_->close_connections();
  }
  if (notify_) notify_->close();
  if (leftover_) leftover_->close();
  manager_.close();
  for (uv_signal_t* h : {&sigterm_, &sigint_, &sighup_, &sigchld_}) {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(h))) {
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    }
  }
}

}  // namespace

namespace {

/// "%*" in a pattern: the line's syslog priority as the journal reads it
/// from a stream ("<3>" error, "<4>" warning, "<6>" info, "<7>" debug).
class SyslogPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr std::string_view kPriority[] = {"<7>", "<7>", "<6>", "<4>",
                                                     "<3>", "<2>", "<6>"};
    std::string_view p = kPriority[static_cast<int>(msg.level)];
    dest.append(p.data(), p.data() + p.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriority>();
  }
};

/// True when stderr is the journal stream systemd connected (JOURNAL_STREAM
/// names its device and inode), so the journal adds timestamps itself.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st;
  if (!stream || fstat(STDERR_FILENO, &st) != 0) return false;
  return std::string(stream) == fmt::format("{}:{}", st.st_dev, st.st_ino);
}

/// The sink every log line goes through; shut down when `baton run` ends.
std::shared_ptr<QueuedStderrSink> log_sink;

uint64_t log_lines_dropped_to_stderr() {
  return log_sink ? log_sink->dropped() : 0;
}

}  // namespace

void setup_logging() {
  log_sink = std::make_shared<QueuedStderrSink>(STDERR_FILENO);
  spdlog::sinks_init_list sinks = {log_sink, std::make_shared<RingSink>()};
  auto logger = std::make_shared<spdlog::logger>("baton", sinks);
  // The app's output: the same sinks, named for the ring by its stream.
  auto out = std::make_shared<spdlog::logger>("stdout", sinks);
  auto err = std::make_shared<spdlog::logger>("stderr", sinks);
  if (stderr_is_journal()) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<SyslogPriority>('*').set_pattern("%*%v");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e baton[%P] %^%l%$: %v");
  }
  spdlog::set_default_logger(logger);
  set_app_loggers(std::move(out), std::move(err));
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
  // The last lines (stopped, exit reasons) are written before baton exits,
  // unless stderr's reader has stopped reading altogether.
  if (log_sink) log_sink->shutdown(std::chrono::seconds(2));
  return code;
}

}  // namespace baton

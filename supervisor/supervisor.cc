// The supervision state machine. Each instance is in one InstanceState; the
// events below move it, and nothing else does:
//
//   state     | READY=1      | main pid exits            | timer fires           | stop
//   ----------+--------------+---------------------------+-----------------------+---------
//   starting  | -> ready     | -> exited, restart later  | ready_timeout: KILL   | drain
//   ready     | -            | -> exited, restart later  | -                     | drain
//   draining  | -            | wait for the group, then  | group still alive at  | -
//             |              |    -> exited              | drain_timeout: KILL   |
//
// "restart later" applies only to the current generation while baton runs;
// the delay doubles with each failure in a row (restart_delay..restart_delay_max).
#include "supervisor.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <nlohmann/json.hpp>

#include "duration.h"

extern char** environ;

namespace baton {
namespace {

/// While a draining instance's main pid has exited but other processes of
/// its group live on, the group is checked this often.
constexpr Millis kGroupPoll{50};

/// Variables baton sets for the app, or that describe baton's own manager
/// and must not leak to the app.
constexpr std::string_view kOwnVariables[] = {"LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES",
                                              "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                              "JOURNAL_STREAM"};

bool is_own_variable(std::string_view entry) {
  std::string_view key = entry.substr(0, entry.find('='));
  return std::find(std::begin(kOwnVariables), std::end(kOwnVariables), key) !=
         std::end(kOwnVariables);
}

Millis since(Clock::time_point t) {
  return std::chrono::duration_cast<Millis>(Clock::now() - t);
}

std::string describe_exit(int64_t status, int signal) {
  if (signal != 0) return fmt::format("was killed by {}", signal_name(signal));
  if (status == 127) return "exited with status 127 (the command could not be executed)";
  return fmt::format("exited with status {}", status);
}

}  // namespace

void ManagerNotifier::notify(const std::string& message) {
  sd_notify(0, message.c_str());
}

Supervisor::Supervisor(uv_loop_t* loop, std::shared_ptr<const Config> config,
                       const std::vector<ListenSocket>& sockets, std::string notify_socket_env,
                       ManagerNotifier& manager)
    : loop_(loop),
      config_(std::move(config)),
      sockets_(sockets),
      notify_socket_env_(std::move(notify_socket_env)),
      manager_(manager) {
  for (char** e = environ; *e; ++e) {
    if (!is_own_variable(*e)) base_environment_.emplace_back(*e);
  }
  uv_timer_init(loop_, &restart_timer_);
  restart_timer_.data = this;
}

Supervisor::~Supervisor() = default;

void Supervisor::start() {
  current_.number = 1;
  current_.config = config_;
  spawn_instance();
}

std::vector<std::string> Supervisor::child_environment() const {
  std::vector<std::string> env = base_environment_;
  for (const auto& [key, value] : current_.config->environment) {
    std::erase_if(env, [&](const std::string& e) { return e.starts_with(key + "="); });
    env.push_back(fmt::format("{}={}", key, value));
  }
  std::vector<std::string> names;
  for (const ListenSocket& s : sockets_) names.push_back(s.spec().name);
  env.push_back(fmt::format("LISTEN_FDS={}", sockets_.size()));
  env.push_back(fmt::format("LISTEN_FDNAMES={}", fmt::join(names, ":")));
  env.push_back(fmt::format("NOTIFY_SOCKET={}", notify_socket_env_));
  return env;
}

void Supervisor::spawn_instance() {
  const Config& config = *current_.config;
  SpawnSpec spec;
  // The trampoline (`baton __exec`) sets LISTEN_PID to its own pid, which
  // exec keeps, then execs the command: libuv offers no hook between fork
  // and exec, and sd_listen_fds() ignores fds whose LISTEN_PID is not its pid.
  spec.argv = {"/proc/self/exe", "__exec"};
  spec.argv.insert(spec.argv.end(), config.command.begin(), config.command.end());
  spec.env = child_environment();
  spec.working_directory = config.working_directory;
  for (const ListenSocket& s : sockets_) spec.fds.push_back(s.fd());

  Instance::Callbacks callbacks{
      [this](Instance& i, int64_t status, int sig) { on_exit(i, status, sig); },
      [this](Instance& i) { on_timer(i); },
      [this](Instance& i) { on_released(i); },
  };
  auto inst = Instance::spawn(loop_, spec, current_.number, std::move(callbacks));
  if (!inst) {
    spdlog::error("generation {}: {}", current_.number, inst.error().message);
    schedule_restart(Clock::now());
    return;
  }
  serving_ = inst->get();
  serving_->arm_timer(config.ready_timeout);
  spdlog::info("generation {}: started pid {} ({})", current_.number, serving_->pid(),
               fmt::join(config.command, " "));
  instances_.push_back(std::move(*inst));
  report_status();
}

Instance* Supervisor::find_live(pid_t pid) {
  for (auto& inst : instances_) {
    if (inst->pid() == pid && !inst->exited) return inst.get();
  }
  return nullptr;
}

void Supervisor::handle_notify(pid_t pid, const NotifyMessage& msg) {
  Instance* inst = find_live(pid);
  if (!inst) {
    spdlog::debug("notify: ignored a message from pid {}, which is not an app's main pid", pid);
    return;
  }
  if (msg.status) {
    inst->status_text = *msg.status;
    spdlog::info("[gen {} pid {}] STATUS={}", inst->generation(), pid, *msg.status);
  }
  if (msg.ready) on_ready(*inst);
  if (msg.stopping && inst->state != InstanceState::kDraining) {
    spdlog::info("[gen {} pid {}] the app says it is stopping", inst->generation(), pid);
  }
  if (msg.errno_value) {
    spdlog::warn("[gen {} pid {}] the app reports error: {}", inst->generation(), pid,
                 std::strerror(*msg.errno_value));
  }
}

void Supervisor::on_ready(Instance& inst) {
  if (inst.state != InstanceState::kStarting) return;
  inst.state = InstanceState::kReady;
  inst.ready_at = Clock::now();
  inst.cancel_timer();
  spdlog::info(
      "generation {}: pid {} ready after {}", inst.generation(), inst.pid(),
      format_duration(std::chrono::duration_cast<Millis>(inst.ready_at - inst.started_at)));
  if (!told_manager_ready_) {
    told_manager_ready_ = true;
    manager_.notify("READY=1");
  }
  report_status();
}

void Supervisor::on_exit(Instance& inst, int64_t status, int signal) {
  std::string how = describe_exit(status, signal);
  switch (inst.state) {
    case InstanceState::kStarting:
    case InstanceState::kReady: {
      spdlog::error("generation {}: pid {} {} while {}", inst.generation(), inst.pid(), how,
                    to_string(inst.state));
      if (&inst == serving_) serving_ = nullptr;
      if (inst.group_alive()) inst.signal_group(SIGKILL);  // orphaned workers
      finish(inst);
      if (state_ == State::kRunning && !serving_) schedule_restart(inst.started_at);
      break;
    }
    case InstanceState::kDraining:
      spdlog::info("generation {}: pid {} {} after draining for {}", inst.generation(), inst.pid(),
                   how, format_duration(since(inst.drain_started_at)));
      check_group_after_exit(inst);
      break;
    case InstanceState::kExited:
      break;
  }
  report_status();
}

void Supervisor::on_timer(Instance& inst) {
  switch (inst.state) {
    case InstanceState::kStarting:
      spdlog::error("generation {}: pid {} sent no READY=1 within ready_timeout ({}); killing it",
                    inst.generation(), inst.pid(), format_duration(current_.config->ready_timeout));
      inst.signal_group(SIGKILL);
      break;
    case InstanceState::kDraining:
      if (!inst.exited) {
        spdlog::warn("generation {}: pid {} still running after drain_timeout ({}); killing it",
                     inst.generation(), inst.pid(), format_duration(config_->drain_timeout));
        inst.signal_group(SIGKILL);
      } else {
        check_group_after_exit(inst);
      }
      break;
    case InstanceState::kReady:
    case InstanceState::kExited:
      break;
  }
}

void Supervisor::check_group_after_exit(Instance& inst) {
  if (!inst.group_alive()) return finish(inst);
  if (since(inst.drain_started_at) >= config_->drain_timeout) {
    spdlog::warn("generation {}: processes of pid {}'s group outlived drain_timeout; killing them",
                 inst.generation(), inst.pid());
    inst.signal_group(SIGKILL);
    return finish(inst);
  }
  inst.arm_timer(kGroupPoll);
}

void Supervisor::drain(Instance& inst) {
  if (inst.state == InstanceState::kDraining || inst.state == InstanceState::kExited) return;
  inst.state = InstanceState::kDraining;
  inst.drain_started_at = Clock::now();
  spdlog::info("generation {}: sending {} to pid {} (drain_timeout {})", inst.generation(),
               signal_name(config_->drain_signal), inst.pid(),
               format_duration(config_->drain_timeout));
  inst.signal_group(config_->drain_signal);
  inst.arm_timer(config_->drain_timeout);
  if (&inst == serving_) serving_ = nullptr;
}

void Supervisor::finish(Instance& inst) {
  inst.state = InstanceState::kExited;
  inst.cancel_timer();
  inst.retire();
}

void Supervisor::on_released(Instance& inst) {
  std::erase_if(instances_, [&](const auto& p) { return p.get() == &inst; });
  check_stopped();
}

void Supervisor::schedule_restart(Clock::time_point failed_started_at) {
  const Config& config = *current_.config;
  // A run longer than the longest delay counts as healthy: start over.
  if (since(failed_started_at) >= config.restart_delay_max) current_.consecutive_failures = 0;
  int failures = ++current_.consecutive_failures;
  Millis delay = config.restart_delay;
  for (int i = 1; i < failures && delay < config.restart_delay_max; ++i) delay *= 2;
  delay = std::min(delay, config.restart_delay_max);
  spdlog::info("generation {}: restarting in {} (failure {} in a row)", current_.number,
               format_duration(delay), failures);
  uv_timer_start(
      &restart_timer_,
      [](uv_timer_t* t) noexcept {
        auto* self = static_cast<Supervisor*>(t->data);
        if (self->state_ != State::kRunning) return;
        self->current_.restarts++;
        self->spawn_instance();
      },
      static_cast<uint64_t>(delay.count()), 0);
}

void Supervisor::stop(std::function<void()> on_stopped) {
  if (on_stopped) on_stopped_.push_back(std::move(on_stopped));
  if (state_ != State::kRunning) return check_stopped();
  state_ = State::kStopping;
  spdlog::info("stopping: draining {} instance(s)", instances_.size());
  manager_.notify("STOPPING=1");
  uv_timer_stop(&restart_timer_);
  for (auto& inst : instances_) drain(*inst);
  check_stopped();
}

void Supervisor::check_stopped() {
  if (state_ != State::kStopping || !instances_.empty()) return;
  state_ = State::kStopped;
  uv_close(reinterpret_cast<uv_handle_t*>(&restart_timer_), nullptr);
  spdlog::info("stopped");
  auto callbacks = std::move(on_stopped_);
  for (auto& cb : callbacks) cb();
}

void Supervisor::report_status() {
  std::string text;
  if (serving_) {
    text = fmt::format("generation {} pid {} {}", current_.number, serving_->pid(),
                       to_string(serving_->state));
  } else if (state_ == State::kRunning) {
    text = fmt::format("generation {} restarting", current_.number);
  } else {
    text = "stopping";
  }
  manager_.notify("STATUS=" + text);
}

nlohmann::json Supervisor::status() const {
  using nlohmann::json;
  json sockets = json::array();
  for (const ListenSocket& s : sockets_) {
    sockets.push_back({{"name", s.spec().name},
                       {"url", s.spec().url},
                       {"kind", s.spec().kind_name()},
                       {"address", s.bound_address()}});
  }
  json instances = json::array();
  for (const auto& inst : instances_) {
    if (inst->state == InstanceState::kExited) continue;
    json i = {{"generation", inst->generation()},
              {"pid", inst->pid()},
              {"state", to_string(inst->state)},
              {"uptime_ms", since(inst->started_at).count()},
              {"status", inst->status_text}};
    if (inst->state != InstanceState::kStarting && inst->ready_at != Clock::time_point{}) {
      i["ready_after_ms"] =
          std::chrono::duration_cast<Millis>(inst->ready_at - inst->started_at).count();
    }
    instances.push_back(std::move(i));
  }
  const char* states[] = {"running", "stopping", "stopped"};
  return {{"name", config_->name},
          {"pid", getpid()},
          {"state", states[static_cast<int>(state_)]},
          {"uptime_ms", since(started_at_).count()},
          {"control", config_->control_path},
          {"generation", current_.number},
          {"restarts", current_.restarts},
          {"sockets", std::move(sockets)},
          {"instances", std::move(instances)}};
}

}  // namespace baton

// Supervisor: the state machine that runs generations of the app on baton's
// listening sockets: start, readiness, restart with backoff, drain and stop.
// Every transition is made in supervisor.cc, in one table of events.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config.h"
#include "instance.h"
#include "listen_socket.h"
#include "notify_message.h"

namespace baton {

/// Sends sd_notify messages to whoever started baton (systemd, or a test),
/// when NOTIFY_SOCKET is set. Does nothing otherwise.
class ManagerNotifier {
 public:
  virtual ~ManagerNotifier() = default;
  virtual void notify(const std::string& message);
};

/// One version of the app: a config snapshot and the instances started
/// from it. A crash restarts the generation with a new instance; a reload
/// (a later capability) creates a new generation.
struct Generation {
  int number = 0;
  std::shared_ptr<const Config> config;
  /// Instances started after the first one (crash restarts).
  int restarts = 0;
  /// Failures in a row; sets the restart delay. Reset by a long enough run.
  int consecutive_failures = 0;
};

class Supervisor {
 public:
  Supervisor(uv_loop_t* loop, std::shared_ptr<const Config> config,
             const std::vector<ListenSocket>& sockets, std::string notify_socket_env,
             ManagerNotifier& manager);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Starts generation 1.
  void start();
  /// Drains every instance, then calls `on_stopped` (once all have exited
  /// and been released). Safe to call more than once; every callback runs.
  void stop(std::function<void()> on_stopped);
  /// A datagram arrived on the notify socket from `pid`.
  void handle_notify(pid_t pid, const NotifyMessage& msg);
  /// Everything `baton status` shows.
  nlohmann::json status() const;

 private:
  enum class State { kRunning, kStopping, kStopped };

  void spawn_instance();
  std::vector<std::string> child_environment() const;
  Instance* find_live(pid_t pid);

  // Events, each handled per instance state.
  void on_exit(Instance& inst, int64_t status, int signal);
  void on_timer(Instance& inst);
  void on_ready(Instance& inst);
  void on_released(Instance& inst);

  // Actions.
  void drain(Instance& inst);
  void finish(Instance& inst);
  void check_group_after_exit(Instance& inst);
  void schedule_restart(Clock::time_point failed_started_at);
  void check_stopped();
  void report_status();

  uv_loop_t* loop_;
  std::shared_ptr<const Config> config_;
  const std::vector<ListenSocket>& sockets_;
  std::string notify_socket_env_;
  ManagerNotifier& manager_;
  /// Environment baton was started with, as "KEY=VALUE".
  std::vector<std::string> base_environment_;

  State state_ = State::kRunning;
  Generation current_;
  /// Every instance whose handles are not yet all closed, oldest first.
  std::vector<std::unique_ptr<Instance>> instances_;
  /// The current generation's instance (starting or ready), or null while a
  /// restart is pending.
  Instance* serving_ = nullptr;
  uv_timer_t restart_timer_{};
  bool told_manager_ready_ = false;
  Clock::time_point started_at_ = Clock::now();
  std::vector<std::function<void()>> on_stopped_;
};

}  // namespace baton

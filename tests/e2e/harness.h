// The end-to-end test harness: runs the real `baton` binary in a temporary
// directory, listens to the sd_notify messages it sends (its NOTIFY_SOCKET
// is ours), reads its state from `baton status --json` and talks to the app
// over loopback (tests/support). Every wait is bounded and every process
// started is killed by pid when the test ends.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/loopback.h"
#include "support/notify_listener.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace e2e {

// The tests use the support library's names as their own.
using namespace support;

/// A condition on `baton status --json`, for Baton::wait_until.
using StatusCheck = std::function<bool(const nlohmann::json&)>;

/// A running `baton run`, logging to DIR/baton.log.
class Baton {
 public:
  /// Starts `baton run ARGS...` in `dir`; `control` is the control socket path
  /// the test's config uses (passed to status).
  /// `launcher`, if given, is run instead with `args` as its whole command
  /// line (e.g. systemd-socket-activate ... baton run ...).
  Baton(const TempDir& dir, std::vector<std::string> args, std::string control,
        const std::string& launcher = "");

  /// Starts `baton run ARGS...` as systemd would after a restart: `fd` as
  /// fd 3 with LISTEN_FDS=1, LISTEN_FDNAMES=`name`, LISTEN_PID=its pid.
  static std::unique_ptr<Baton> with_socket(const TempDir& dir, std::vector<std::string> args,
                                            std::string control, int fd, const std::string& name);
  ~Baton();
  Baton(const Baton&) = delete;
  Baton& operator=(const Baton&) = delete;

  pid_t pid() const { return process_.pid(); }
  NotifyListener& notify() { return notify_; }
  const std::string& control() const { return control_; }

  /// Waits for baton's READY=1 (its first generation is ready).
  bool wait_ready(Millis timeout = 10s);
  /// Waits until `baton status --json` satisfies `check`, asking again each
  /// time baton sends its manager a message (a STATUS= line comes with every
  /// change of state).
  bool wait_until(const StatusCheck& check, Millis timeout = 10s);
  /// `baton status --json`; throws if baton does not answer.
  nlohmann::json status();
  /// `baton status --json`, or nullopt if baton does not answer (yet).
  std::optional<nlohmann::json> try_status(Millis timeout = 30s);
  /// The pid of the instance in state `state` (e.g. "ready"), or -1.
  pid_t instance_pid(const std::string& state = "ready");
  /// Waits (as wait_until) until an instance, of generation `generation` if
  /// not 0, is in state `state`; its pid, or -1 after `timeout`.
  pid_t wait_instance(const std::string& state, int generation = 0, Millis timeout = 10s);
  /// Waits for baton to exit; its exit code, or nullopt after `timeout`.
  std::optional<int> wait_exit(Millis timeout = 10s);
  std::string log() const;
  /// Whether baton runs and where it waits, or how it exited: for a
  /// failure message.
  std::string describe();

 private:
  Baton(const TempDir& dir, std::vector<std::string> argv, std::string control,
        std::vector<std::string> extra_env, int fd3);
  Child start(const TempDir& dir, std::vector<std::string> argv, std::vector<std::string> extra_env,
              int fd3);
  void remember_app_pids(const nlohmann::json& status);

  std::string log_path_;
  std::string control_;
  NotifyListener notify_;
  /// The apps' pids as status reports them, to kill if baton leaves them.
  std::set<pid_t> app_pids_;
  Child process_;
};

/// For Baton::wait_until: no app of generation `generation` runs and baton
/// waits to start it again.
StatusCheck restarting(int generation);
/// For Baton::wait_until: generation `generation`, or a later one, is the
/// current one (a later one: generation N may be current for less time
/// than a status request takes).
StatusCheck generation_reached(int generation);

/// How many connections wait in the accept queue of the listening socket on
/// 127.0.0.1:port, or -1 if there is none.
int accept_queue_length(int port);
/// True if a file (of any kind) exists at `path`.
bool path_exists(const std::string& path);
/// The whole content of the file at `path`; empty if it cannot be read.
std::string read_file(const std::string& path);

std::string baton_bin();
std::string hello_bin();
std::string probe_bin();

}  // namespace e2e

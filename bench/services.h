// The services reload_bench and soak put load on: the test app alone (socket
// activated by the bench itself, the baseline) and hello under `baton run`
// (started from a config in a temporary directory, reloaded with `baton
// reload`), both on 127.0.0.1 with a kernel-chosen port; and examples/legacy
// (binds its own port) alone and under `baton run` with `shim = true`, on a
// free loopback port picked up front. All are stopped with SIGTERM and reaped
// by pid, even when a step fails.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "interrupt.h"
#include "report.h"
#include "support/temp_dir.h"
#include "unique_fd.h"

namespace bench {

using baton::UniqueFd;
using support::TempDir;

/// Paths of the binaries under test.
struct Binaries {
  std::string baton;
  std::string hello;
  std::string legacy;        // "" if examples/legacy is not built
  std::string shim_library;  // libbaton_shim.so, "" likewise
};

/// Waits until `address` answers a request; calls `check_alive` between
/// attempts (it throws if the server died). Throws BenchError at `deadline`.
void wait_until_serving(const std::string& address, Clock::time_point deadline,
                        const std::function<void()>& check_alive);

/// Where hello alone runs. kOwn: in a session of its own, as baton once
/// started apps (the baseline of modes close and keepalive). kLikeBaton: as
/// baton starts apps now, in a process group of its own in the bench's
/// session, so in the bench's CPU autogroup, as hello under baton is: on a
/// busy machine a session of its own gets hello a CPU share of its own (see
/// README.md, "Scheduling on this VM").
enum class AloneSession { kOwn, kLikeBaton };

/// hello with a listening socket of our own as fd 3 (LISTEN_FDS=1), no supervisor.
class HelloAlone {
 public:
  explicit HelloAlone(const Binaries& bins, AloneSession session = AloneSession::kOwn);
  ~HelloAlone();
  HelloAlone(const HelloAlone&) = delete;
  HelloAlone& operator=(const HelloAlone&) = delete;

  const std::string& address() const { return address_; }
  /// Waits until hello answers; throws if it does not within 10 s.
  void wait_serving();
  /// SIGTERM and wait for a clean exit; throws if it does not drain in 10 s.
  void stop();

 private:
  void check_alive();

  TempDir dir_{"reload-bench"};
  UniqueFd listener_;
  UniqueFd log_;
  std::string address_;
  std::optional<ForwardedChild> hello_;
};

/// examples/legacy binding 127.0.0.1:PORT itself (a free port), no supervisor.
class LegacyAlone {
 public:
  explicit LegacyAlone(const Binaries& bins);
  ~LegacyAlone();
  LegacyAlone(const LegacyAlone&) = delete;
  LegacyAlone& operator=(const LegacyAlone&) = delete;

  const std::string& address() const { return address_; }
  /// Waits until legacy answers; throws if it does not within 60 s.
  void wait_serving();
  /// SIGTERM (legacy has no handler: it dies of it); throws if it lingers 20 s.
  void stop();

 private:
  void check_alive();

  TempDir dir_{"reload-bench"};
  UniqueFd log_;
  std::string address_;
  std::optional<ForwardedChild> legacy_;
};

/// A `baton reload` that ran to completion: done, or refused / rolled back.
struct ReloadOutcome {
  ReloadTiming timing;  // generation and pid only if `ok`
  bool ok = false;
  /// What `baton reload` printed, stdout then stderr (if !ok: "baton: reload
  /// failed: ..."; with readiness probes, one line per failed attempt).
  std::string output;
};

/// How BatonService runs hello (the shim's legacy ignores all of it).
struct HelloConfig {
  int boot_delay_ms = 0;         ///< HELLO_BOOT_DELAY_MS: sleeps this long before READY=1
  bool notify = true;            ///< false: HELLO_NO_NOTIFY=1, never sends READY=1
  int health_fail_ms = 0;        ///< HELLO_HEALTH_FAIL_MS: /healthz answers 503 this long
  std::string listeners{};       ///< `listeners = ...`; "" keeps baton's default
  std::string ready_http{};      ///< `[ready] http = ...` (a path); "" configures no probe
  std::string ready_interval{};  ///< `[ready] interval`, with ready_http ("" = default)
  int instances = 0;             ///< `instances = N`; 0 keeps baton's default (1)
  std::string strategy{};        ///< `strategy = ...` ("rolling"); "" keeps the default
  int max_surge = 0;             ///< `max_surge = S`, with strategy "rolling"; 0: not written
  std::string standby{};         ///< `standby = ...` ("1m"); "" keeps the default (none)
};

/// A `baton VERB -c CONFIG` started in the background (BatonService::start_command).
/// Its destructor SIGKILLs and reaps it if it has not been reaped.
struct BackgroundCommand {
  support::Child child;
  Clock::time_point started;  // just before fork
  std::string output_path;    // its stdout and stderr
  /// What it printed so far ("" if the file cannot be read).
  std::string output() const;
};

/// hello, or legacy under the shim, under `baton run -c CONFIG`.
class BatonService {
 public:
  /// Writes the config (hello as `hello` says: boot delay, notify or not,
  /// readiness probe, listener mode, instances and reload strategy, standby
  /// window), starts baton and waits until its first generation is ready
  /// and answers. With `shim_port` > 0 the app is examples/legacy instead,
  /// run with `shim = true` on 127.0.0.1:shim_port (`hello` ignored). Throws
  /// BenchError naming what failed.
  BatonService(const Binaries& bins, const HelloConfig& hello, int shim_port = 0);
  ~BatonService();
  BatonService(const BatonService&) = delete;
  BatonService& operator=(const BatonService&) = delete;

  const std::string& address() const { return address_; }
  /// baton's own pid (the `baton run` process).
  pid_t pid() const { return baton_->pid(); }
  /// Runs `baton reload -c CONFIG`; throws unless it succeeds.
  ReloadTiming reload();
  /// Runs `baton reload -c CONFIG` (with `--wait` if `wait_for_drain`: it
  /// returns once the old generation exited). Exit status 1 (the reload was
  /// refused or rolled back) is an outcome; a timeout, any other status or an
  /// unreadable success message throws.
  ReloadOutcome try_reload(bool wait_for_drain);
  /// Starts `baton VERB -c CONFIG` (e.g. "rollback") without waiting for it.
  BackgroundCommand start_command(const std::string& verb);
  /// `baton status --json`; throws, with the end of baton's log, if baton
  /// died or does not answer.
  nlohmann::json status();
  /// Waits for the replaced generation to exit and fills in baton's own
  /// step timings from `baton status --json`.
  void wait_drained(ReloadTiming& timing);
  /// SIGTERM to baton, and wait for it to drain the app and exit 0.
  void stop();
  /// Throws BenchError: `what`, and the end of baton's log.
  [[noreturn]] void fail(const std::string& what);

 private:
  std::string write_config(const HelloConfig& hello, int shim_port) const;
  void start();
  void wait_ready();
  /// `baton status --json`, or nullopt if baton does not answer (yet).
  std::optional<nlohmann::json> try_status();
  void check_alive();
  void remember_app_pids(const nlohmann::json& status);
  /// Stops baton if it still runs: SIGTERM, then SIGKILL and kill_apps().
  void shut_down() noexcept;
  /// SIGKILLs the process group of every app pid seen, for when baton is gone.
  void kill_apps() noexcept;

  Binaries bins_;
  bool shim_ = false;
  TempDir dir_{"reload-bench"};
  std::string config_;
  std::string control_;
  std::vector<std::string> env_;
  UniqueFd log_;
  std::string address_;
  std::set<int> app_pids_;
  std::optional<ForwardedChild> baton_;
};

}  // namespace bench

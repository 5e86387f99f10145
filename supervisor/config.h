// Config: everything `baton run` needs to supervise one service, read from a
// TOML file (`baton run -c FILE`) or built from command-line flags. Parsing
// reports every problem with file:line:column and the key at fault.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "duration.h"
#include "result.h"
#include "socket_spec.h"

namespace baton {

/// An HTTP readiness probe: GET `path` on a socket of the candidate.
struct HttpCheck {
  std::string path = "/";
  /// The Host header; empty: the address probed ("127.0.0.1:8080").
  std::string host;
  /// Pass on exactly this status; nullopt: any 2xx.
  std::optional<int> status;
  /// Pass only if the body contains this; empty: any body.
  std::string body;
};

/// How a new instance proves it is ready. Every configured check must pass
/// (each once); ready_timeout bounds the whole wait.
struct ReadyChecks {
  /// READY=1 over sd_notify (in shim mode: the shim's "it called accept()").
  /// Default: on when no probe is configured, off when one is.
  bool notify = true;
  std::optional<HttpCheck> http;
  /// Pass once a connection to the socket succeeds.
  bool tcp = false;
  /// Pass once this command exits 0 (run without a shell).
  std::vector<std::string> exec;
  /// The socket http and tcp probes connect to (a [[socket]] name); empty:
  /// the first stream socket.
  std::string socket;
  /// Time between the start of two attempts of one probe.
  Millis interval{250};
  /// One attempt's limit.
  Millis timeout{1'000};

  bool any_probe() const { return http || tcp || !exec.empty(); }
};

/// A command baton runs: a smoke check or a hook.
struct CheckCommand {
  /// Shown in progress and messages; default: the command line.
  std::string name;
  std::vector<std::string> command;
  Millis timeout{60'000};
};

/// How generations share the configured addresses.
enum class ListenerMode {
  /// Each generation gets listeners of its own on the same addresses
  /// (reuseport steering for tcp/udp, rename for unix path sockets), so
  /// probes reach the candidate alone and nothing public reaches it before
  /// the switch. Sockets that cannot be steered are shared (the reason is
  /// logged and in `status`).
  kPerGeneration,
  /// One socket per address for every generation (baton before probes).
  kShared,
};

/// One service's supervision settings. Paths are absolute or relative to
/// the directory of the config file (`base_dir`).
/// The most instances a generation may have.
inline constexpr int kMaxInstances = 64;

struct Config {
  /// The config file this came from; empty for a command-line config.
  std::string file;
  /// Directory relative paths are resolved against.
  std::string base_dir;
  /// Service name, used in logs and the default control socket path.
  std::string name = "baton";
  /// The control socket path (unix stream, owner-only).
  std::string control_path;
  /// The app's argv. argv[0] is looked up in PATH when it has no '/'.
  std::vector<std::string> command;
  /// Extra environment for the app, in file order.
  std::vector<std::pair<std::string, std::string>> environment;
  /// The app's working directory; empty means baton's own.
  std::string working_directory;
  /// Listening sockets, in the order the app receives them (fd 3, 4, ...).
  std::vector<SocketSpec> sockets;
  /// Run the app under the LD_PRELOAD shim (for programs that bind their
  /// own port); readiness and drain then come from the shim.
  bool shim = false;
  /// The shim library's path; resolved by `baton run`, not read from files.
  std::string shim_library;

  /// `server = "nginx"`: a preset from server_presets.h; it sets drain_signal
  /// unless the config gives one. Empty: none.
  std::string server;
  /// Signal that asks an instance to drain (finish in-flight work and exit).
  int drain_signal = 15;  // SIGTERM
  /// How long a draining instance may take before its process group is SIGKILLed.
  Millis drain_timeout{30'000};
  /// How long a starting instance may take to send READY=1.
  Millis ready_timeout{60'000};
  /// First delay before restarting an app that exited on its own; doubles
  /// on each consecutive failure up to restart_delay_max.
  Millis restart_delay{100};
  Millis restart_delay_max{10'000};
  /// App watchdog: a ready app must send WATCHDOG=1 at least this often
  /// (it gets WATCHDOG_USEC and WATCHDOG_PID); one that stops is replaced
  /// through the normal handoff. Zero: off.
  Millis watchdog_sec{0};
  /// After a reload's new generation is ready, the old generation keeps
  /// running this long; if the new one exits within it, baton switches back
  /// to the old one. Zero: off.
  Millis min_ready{0};

  /// How many processes of a generation run at once on its listeners
  /// (`instances`, 1 to kMaxInstances); each has its own readiness and
  /// restart backoff, and a crash restarts that one only.
  int instances = 1;
  /// How a reload replaces them (`strategy`): all at once (every new
  /// instance ready, then every old one drains) or rolling (`max_surge` new
  /// ones at a time, as many old ones drain after each step).
  enum class Strategy { kAllAtOnce, kRolling };
  Strategy strategy = Strategy::kAllAtOnce;
  int max_surge = 1;
  /// `[canary]`: every reload first gives the new generation `share` (in
  /// kShareScale parts, see steering.h) of new connections, and promotes it
  /// after `hold` if it stays up and its http probe passes (0: it waits for
  /// `baton promote`).
  struct Canary {
    uint32_t share = 0;
    Millis hold{0};
  };
  std::optional<Canary> canary;

  /// `[metrics]`: baton writes what `baton metrics` prints to `path` every
  /// `interval`, each time whole (a temporary file renamed over it), for
  /// node_exporter's textfile collector; removed when baton stops.
  struct MetricsFile {
    std::string path;
    Millis interval{15'000};
    bool operator==(const MetricsFile&) const = default;
  };
  std::optional<MetricsFile> metrics_file;

  /// After a reload, the replaced generation stays up this long, steered
  /// away from, as a warm standby `baton rollback` switches back to at once
  /// (`standby`). Zero: it drains at once.
  Millis standby{0};

  /// What makes an instance ready (`[ready]`).
  ReadyChecks ready;
  /// Run in order after the candidate is ready and before the switch; the
  /// first failure rolls the reload back (`[[smoke]]`).
  std::vector<CheckCommand> smoke;
  /// Runs before a reload's candidate starts; a failure aborts the reload
  /// with nothing started (`[hooks] pre_reload`).
  std::optional<CheckCommand> pre_reload;
  /// Runs once no process of an older generation is left after a reload
  /// (`[hooks] after_drained`).
  std::optional<CheckCommand> after_drained;
  /// `listeners = "per-generation" | "shared"`.
  ListenerMode listeners = ListenerMode::kPerGeneration;
  /// The app's NOTIFY_SOCKET: a socket file beside the control socket
  /// (notify_socket_path), which every sd_notify library can reach; or, with
  /// `notify_socket = "abstract"`, an abstract name only libraries that
  /// know the '@' form (libsystemd, python's, systemd-notify) can.
  bool abstract_notify_socket = false;
  /// `notify_access`, with systemd's meanings: whose notify messages count
  /// for an instance: its main pid (or the pid it names with MAINPID=)
  /// only; also the processes the main pid started (a wrapper script's
  /// children); or any process of its process group.
  enum class NotifyAccess { kMain, kExec, kAll };
  NotifyAccess notify_access = NotifyAccess::kMain;
};

/// Where the notify socket file of a baton with this control socket is:
/// "<control_path>.notify", made absolute.
std::string notify_socket_path(const std::string& control_path);

/// Reads and validates a TOML config file. A file over 1 MiB is refused
/// without being read whole.
Result<Config> load_config(const std::string& path);

/// Parses and validates TOML text; `path` names it in messages and sets
/// base_dir. Text over 1 MiB, or nested more than 64 levels deep (which
/// would overflow the parser's stack), is refused before parsing. It never
/// throws: every problem is in the error.
Result<Config> parse_config(std::string_view text, const std::string& path);

/// Reads only the control socket path from a config file, for client
/// commands; it does not validate the rest. When the file does not parse,
/// the plain `name = "..."` and `control = "..."` lines before the first
/// table header still give it, so a running baton can be stopped after its
/// config broke; with neither, the error is the parse error.
Result<std::string> read_control_path(const std::string& path);

/// The checks of a parsed config that need the file system but no socket:
/// the control path fits a unix socket address, working_directory is a
/// directory, the command is an executable file, and (in shim mode) the
/// shim can reach it. `baton check` and `baton run` refuse the same
/// configs through it. Problems are named after the config file, or
/// "baton" for a command-line config.
Status check_runnable(const Config& config);

/// Whether http and tcp probes can reach a listener of `socket` alone in
/// `mode` (the kernel steers connections from 127.0.0.2 to the candidate's
/// listener). The error says why not, naming the socket ("socket 'dns' is
/// udp; http and tcp probes need a tcp or unix socket").
Status check_probe_target(const SocketSpec& socket, ListenerMode mode);

/// The socket http and tcp probes connect to: the one `ready.socket` names,
/// else the first tcp or unix socket; nullptr when there is none.
const SocketSpec* probed_socket(const Config& config);

/// The checked-deploy flags of `baton run --listen ... -- CMD`, as typed
/// (empty: not given); config_from_flags reads and checks them. Commands
/// are shell command lines, run as /bin/sh -c CMD.
struct CheckFlags {
  std::string ready_http;          ///< --ready-http PATH
  bool ready_tcp = false;          ///< --ready-tcp
  std::string ready_exec;          ///< --ready-exec CMD
  bool ready_notify = false;       ///< --ready-notify: READY=1 as well as the probes
  std::string ready_socket;        ///< --ready-socket NAME
  std::string ready_interval;      ///< --ready-interval DUR
  std::string probe_timeout;       ///< --probe-timeout DUR (one attempt)
  std::vector<std::string> smoke;  ///< --smoke CMD, in order
  std::string pre_reload;          ///< --pre-reload CMD
  std::string after_drained;       ///< --after-drained CMD
  std::string listeners;           ///< --listeners per-generation|shared
};

/// Everything `baton run` without a config file is given.
struct RunFlags {
  /// `--listen NAME=URL`, in order.
  std::vector<std::string> listens;
  /// --control; empty: the default for "baton".
  std::string control_path;
  /// The app's argv (after --).
  std::vector<std::string> command;
  bool shim = false;
  CheckFlags checks;
};

/// Builds and validates a config from command-line flags.
Result<Config> config_from_flags(const RunFlags& flags);

/// The same, from sockets and a command alone.
inline Result<Config> config_from_flags(const std::vector<std::string>& listens,
                                        const std::string& control_path,
                                        std::vector<std::string> command, bool shim = false) {
  return config_from_flags(RunFlags{listens, control_path, std::move(command), shim, {}});
}

/// The control socket path used when none is configured:
/// $XDG_RUNTIME_DIR/baton/NAME.sock for non-root users, /run/baton/NAME.sock for root.
std::string default_control_path(const std::string& name);

/// Parses a canary share, "10%" or "2.5%" (above 0, below 100, at most two
/// decimals), into parts of 10,000.
Result<uint32_t> parse_share(std::string_view text);
/// "10%", "2.5%".
std::string format_share(uint32_t share);

/// Parses "SIGTERM", "TERM" or "15".
Result<int> parse_signal(std::string_view text);
/// "SIGTERM" for 15.
std::string signal_name(int sig);

}  // namespace baton

// load_client: an HTTP/1.1 load generator for `baton verify`, baton's reload
// tests and benchmarks, closed-loop or paced to a rate. It talks only to
// loopback (127.0.0.0/8, ::1, unix sockets), counts every failed request by
// kind and records which server pid answered.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace load {

/// How requests use connections.
enum class Mode {
  /// A new connection per request ("Connection: close").
  kConnectionPerRequest,
  /// One connection per thread, reused until the server answers "Connection: close".
  kKeepAlive,
};

/// What to load and for how long.
struct LoadOptions {
  /// "127.0.0.1:8080", "[::1]:8080", "localhost:8080" (= 127.0.0.1), or a unix
  /// socket path (anything containing '/'). Anything not loopback is refused.
  std::string address;
  /// The request target; must start with '/' and contain no whitespace.
  std::string path = "/";
  Mode mode = Mode::kConnectionPerRequest;
  /// Concurrent client threads, each with one request in flight at most. 1..4096.
  int connections = 4;
  /// 0: closed loop (each thread sends its next request as soon as the last
  /// one ends). Else requests a second, due at fixed times (request k at
  /// started + k / rate) whatever the answers, taken by whichever thread is
  /// free: `connections` is then the most requests in flight. A request's
  /// latency counts from when it was due, so a server that falls behind
  /// shows in the latencies rather than as a lower rate. 0..1000000.
  int rate = 0;
  /// How long to run; 0 = until stop() or end_at(). Never longer than max_duration.
  std::chrono::milliseconds duration{0};
  /// Hard bound on the run (> 0). A request in flight when it ends is finished.
  std::chrono::milliseconds max_duration{120000};
  /// Per request (> 0): connect + send + the full response.
  std::chrono::milliseconds request_timeout{5000};
  /// Keep one Sample per request (LoadResult::samples).
  bool record_latencies = false;
};

/// Why a request failed.
enum class Failure {
  /// connect(): ECONNREFUSED, or ENOENT for a unix socket path.
  kRefused,
  /// Connection reset, EPIPE or EOF before any byte of the response.
  kReset,
  /// No connection within the per-request deadline (connect did not complete).
  kTimeout,
  /// Connected, but the request was not taken or not answered whole within
  /// the per-request deadline: the server accepted and went silent, or the
  /// connection sits in an accept queue nobody serves.
  kHung,
  /// Reset or EOF after part of the response arrived.
  kShortResponse,
  /// Malformed status line or headers, unsupported framing, junk after the body.
  kInvalidResponse,
  /// A complete response whose status is not 2xx.
  kNon2xx,
  /// Anything else (e.g. EADDRNOTAVAIL, EMFILE).
  kOther,
};

/// "refused", "reset", "timeout", "hung", "short_response", "invalid_response",
/// "non_2xx", "other".
std::string_view to_string(Failure failure);

/// Every Failure, in enum order (for reports that list all kinds).
extern const Failure kAllFailures[8];

/// One request, for latency analysis.
struct Sample {
  /// Just before connect() (or send() on a reused keep-alive connection);
  /// with a rate, when the request was due.
  std::chrono::steady_clock::time_point start;
  /// From `start` to the last byte of the response (or to the failure).
  std::chrono::microseconds latency;
  /// A complete 2xx response.
  bool ok;
};

/// The merged outcome of a run. Invariant: ok + failed() == requests made.
struct LoadResult {
  /// 2xx responses fully received.
  uint64_t ok = 0;
  /// Every failure by kind (absent = 0).
  std::map<Failure, uint64_t> failures;
  /// Sum of `failures`.
  uint64_t failed() const;
  /// Server pid -> ok responses it served ("hello from pid N"; 0 = no pid in the body).
  std::map<int, uint64_t> pids;
  /// The first (by time) ~10 failures, e.g. "reset: recv: Connection reset by
  /// peer after 0 bytes [thread 3, +1.204s]"; an idle keep-alive close reads
  /// "reset on reused connection: ...".
  std::vector<std::string> failure_examples;
  /// One per request, sorted by start; only if LoadOptions::record_latencies.
  std::vector<Sample> samples;
  /// Connections opened (connect() attempts, including failed ones).
  uint64_t connections_opened = 0;
  /// When the run started (the origin for relative sample times).
  std::chrono::steady_clock::time_point started;
  /// From the start until the last thread finished.
  std::chrono::milliseconds elapsed{0};
};

struct StartResult;

/// A load run in background threads. start() it, optionally stop() it, then
/// wait() for the result. All methods may be called from any thread, but
/// wait() from one thread at a time.
class LoadRun {
 public:
  /// Validates the options (loopback only) and starts the threads.
  static StartResult start(LoadOptions options);

  /// Asks every thread to finish its current request and exit. Idempotent.
  void stop();
  /// Ends the run at `end` (at most started() + max_duration) instead: a
  /// request in flight then is finished; with a rate, the requests due
  /// before `end` are made. An `end` already past ends the run now.
  void end_at(std::chrono::steady_clock::time_point end);
  /// When the run started (as LoadResult::started).
  std::chrono::steady_clock::time_point started() const;
  /// Joins the threads (after the duration, max_duration or stop()) and
  /// returns the merged result. Later calls return the same result.
  LoadResult wait();
  /// Requests finished so far (ok + failed), for tests waiting for traffic.
  uint64_t completed() const;
  /// Requests failed so far, for progress lines.
  uint64_t failed() const;
  /// True once a response from server `pid` has been received.
  bool has_served(int pid) const;

  /// Stops and joins if still running.
  ~LoadRun();
  LoadRun(const LoadRun&) = delete;
  LoadRun& operator=(const LoadRun&) = delete;

 private:
  struct State;
  explicit LoadRun(std::unique_ptr<State> state);

  /// Never null.
  std::unique_ptr<State> state_;
};

/// What LoadRun::start() returns: a running load, or why it could not start.
struct StartResult {
  /// Non-null on success.
  std::unique_ptr<LoadRun> run;
  /// Set iff `run` is null: "address 10.0.0.1:80 is not loopback".
  std::string error;
  /// Non-zero when a system call failed; 0 when the options were invalid.
  int sys_errno = 0;

  explicit operator bool() const { return run != nullptr; }
};

}  // namespace load

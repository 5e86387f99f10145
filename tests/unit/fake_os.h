// FakeOs: the Os seam without processes or a loop, for the lifecycle's unit
// tests. Processes are records that a test makes exit and release; timers
// fire when the test advances the clock; every signal sent is logged as
// "KILL 1000" or "TERM 1000" so a test can assert exactly what was done.
#pragma once

#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config.h"
#include "os.h"

namespace fake {

using namespace baton;

class FakeOs;

struct FakeProcess final : Process {
  FakeProcess(FakeOs& os, pid_t pid, Events events)
      : os(os), pid_(pid), events(std::move(events)) {}
  ~FakeProcess() override;
  pid_t pid() const override { return pid_; }
  void signal_group(int sig) override;
  bool group_alive() const override { return alive; }
  void retire() override { retired = true; }
  const std::deque<std::string>& last_stderr() const override { return stderr_tail; }

  FakeOs& os;
  pid_t pid_;
  Events events;
  /// Whether a process of its group lives (the main pid or a worker).
  bool alive = true;
  bool retired = false;
  std::deque<std::string> stderr_tail;
};

struct FakeTimer final : Timer {
  FakeTimer(FakeOs& os, std::function<void()> fired);
  ~FakeTimer() override;
  void arm(std::chrono::milliseconds after) override;
  void cancel() override { due.reset(); }

  FakeOs& os;
  std::function<void()> fired;
  std::optional<Clock::time_point> due;
};

class FakeOs final : public Os {
 public:
  Clock::time_point now() const override { return now_; }
  Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, int,
                                         Process::Events events) override {
    if (spawn_failures_after == 0) {
      spawn_failures_after = -1;
      fail_spawns++;
    } else if (spawn_failures_after > 0) {
      --spawn_failures_after;
    }
    if (fail_spawns > 0) {
      --fail_spawns;
      return sys_error("cannot start app", ENOENT);
    }
    specs.push_back(spec);
    pid_t pid = next_pid++;
    auto p = std::make_unique<FakeProcess>(*this, pid, std::move(events));
    processes[pid] = p.get();
    log.push_back(fmt::format("spawn {}", pid));
    return std::unique_ptr<Process>(std::move(p));
  }
  pid_t process_group_of(pid_t pid) const override {
    auto it = groups.find(pid);
    return it == groups.end() ? -1 : it->second;
  }
  pid_t parent_of(pid_t pid) const override {
    auto it = parents.find(pid);
    return it == parents.end() ? -1 : it->second;
  }
  std::string command_name(pid_t pid) const override { return live(pid) ? "app" : ""; }
  std::unique_ptr<Timer> timer(std::function<void()> fired) override {
    return std::make_unique<FakeTimer>(*this, std::move(fired));
  }
  void watch_escaped(std::function<EscapeScope()>, std::function<void()>) override {}
  void sweep_escaped(const std::string& ended, Clock::time_point) override {
    sweeps.push_back(ended);
  }
  bool escaped_empty() const override { return true; }
  void close() override { closed = true; }

  /// A probe attempt or command in flight; the test completes it with
  /// finish_probe() / finish_command(). Destroying it logs "cancel probe N".
  struct FakePending final : Pending {
    FakePending(FakeOs& os, int id) : os(os), id(id) {}
    ~FakePending() override;
    FakeOs& os;
    int id;
  };
  struct ProbeCall {
    ProbeSpec spec;
    std::function<void(ProbeResult)> done;
  };
  struct CommandCall {
    CommandSpec spec;
    std::function<void(const std::string&)> line;
    std::function<void(CommandResult)> done;
  };
  std::unique_ptr<Pending> probe(const ProbeSpec& spec,
                                 std::function<void(ProbeResult)> done) override {
    int id = next_call++;
    probes[id] = {spec, std::move(done)};
    log.push_back(fmt::format("probe {}", id));
    return std::make_unique<FakePending>(*this, id);
  }
  std::unique_ptr<Pending> run(const CommandSpec& spec,
                               std::function<void(const std::string&)> line,
                               std::function<void(CommandResult)> done) override {
    int id = next_call++;
    commands[id] = {spec, std::move(line), std::move(done)};
    log.push_back(fmt::format("run {} {}", id, spec.argv.empty() ? "" : spec.argv[0]));
    return std::make_unique<FakePending>(*this, id);
  }
  Status switch_to(const std::vector<SharedSocket>&) override {
    log.push_back("switch");
    return {};
  }
  Status share(const std::vector<SharedSocket>&, uint32_t share) override {
    log.push_back(fmt::format("share {}", share));
    return {};
  }
  std::optional<int> queued(const std::vector<SharedSocket>&) override {
    return queued_connections;
  }

  /// The probe attempt in flight (exactly one must be).
  int pending_probe() const {
    REQUIRE_MESSAGE(probes.size() == 1, probes.size(), " probes in flight");
    return probes.begin()->first;
  }
  void finish_probe(int id, bool passed, std::string summary = "probe") {
    auto it = probes.find(id);
    REQUIRE_MESSAGE(it != probes.end(), "no probe ", id, " in flight");
    auto done = std::move(it->second.done);
    probes.erase(it);
    done(ProbeResult{passed, std::move(summary)});
  }
  /// The command in flight whose argv[0] is `program` (exactly one must be).
  int pending_command(const std::string& program) const {
    int found = -1;
    for (const auto& [id, c] : commands) {
      if (!c.spec.argv.empty() && c.spec.argv[0] == program) {
        REQUIRE_MESSAGE(found < 0, "two commands ", program, " in flight");
        found = id;
      }
    }
    REQUIRE_MESSAGE(found >= 0, "no command ", program, " in flight");
    return found;
  }
  void finish_command(int id, bool passed, std::string outcome = "exited with status 0",
                      std::vector<std::string> output = {}) {
    auto it = commands.find(id);
    REQUIRE_MESSAGE(it != commands.end(), "no command ", id, " in flight");
    auto done = std::move(it->second.done);
    commands.erase(it);
    done(CommandResult{passed, std::move(outcome), std::move(output), Millis{0}});
  }

  /// Moves the clock on by `by`, firing each timer that falls due, in order.
  void advance(std::chrono::milliseconds by) {
    Clock::time_point until = now_ + by;
    for (;;) {
      FakeTimer* next = nullptr;
      for (FakeTimer* t : timers) {
        if (t->due && *t->due <= until && (!next || *t->due < *next->due)) next = t;
      }
      if (!next) break;
      now_ = *next->due;
      next->due.reset();
      next->fired();
    }
    now_ = until;
  }
  /// How long until the next timer falls due; none when none is armed.
  std::optional<std::chrono::milliseconds> next_due() const {
    std::optional<std::chrono::milliseconds> best;
    for (FakeTimer* t : timers) {
      if (!t->due) continue;
      auto d = std::chrono::duration_cast<std::chrono::milliseconds>(*t->due - now_);
      if (!best || d < *best) best = d;
    }
    return best;
  }
  FakeProcess& process(pid_t pid) {
    auto it = processes.find(pid);
    REQUIRE_MESSAGE(it != processes.end(), "no live fake process ", pid);
    return *it->second;
  }
  /// The main pid exits; its group is gone too unless `group_lives`.
  void exit(pid_t pid, int64_t status = 0, int signal = 0, bool group_lives = false) {
    FakeProcess& p = process(pid);
    p.alive = group_lives;
    log.push_back(fmt::format("exit {}", pid));
    p.events.on_exit(status, signal);
  }
  /// Its handles close (after retire()).
  void release(pid_t pid) {
    FakeProcess& p = process(pid);
    REQUIRE_MESSAGE(p.retired, "pid ", pid, " released before it was retired");
    p.events.on_released();
  }
  bool live(pid_t pid) const { return processes.count(pid) != 0; }
  /// The log, emptied.
  std::vector<std::string> take_log() { return std::exchange(log, {}); }

  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  pid_t next_pid = 1000;
  int fail_spawns = 0;
  /// When set, that many more spawns succeed and the one after fails.
  int spawn_failures_after = -1;
  std::map<pid_t, FakeProcess*> processes;
  std::map<pid_t, pid_t> groups;
  /// Parents by pid (notify_access = "exec").
  std::map<pid_t, pid_t> parents;
  std::vector<FakeTimer*> timers;
  std::vector<SpawnSpec> specs;
  std::vector<std::string> sweeps;
  std::vector<std::string> log;
  bool closed = false;
  int next_call = 1;
  /// What queued() answers: nullopt, as for shared sockets, unless a test
  /// gives the generations listeners of their own.
  std::optional<int> queued_connections;
  std::map<int, ProbeCall> probes;
  std::map<int, CommandCall> commands;
};

inline FakeOs::FakePending::~FakePending() {
  bool probe = os.probes.erase(id) != 0;
  bool command = os.commands.erase(id) != 0;
  if (probe || command) os.log.push_back(fmt::format("cancel {}", id));
}

inline FakeProcess::~FakeProcess() {
  os.processes.erase(pid_);
}

inline void FakeProcess::signal_group(int sig) {
  os.log.push_back(fmt::format("{} {}", signal_name(sig).substr(3), pid_));
}

inline FakeTimer::FakeTimer(FakeOs& os, std::function<void()> fired)
    : os(os), fired(std::move(fired)) {
  os.timers.push_back(this);
}
inline FakeTimer::~FakeTimer() {
  std::erase(os.timers, this);
}
inline void FakeTimer::arm(std::chrono::milliseconds after) {
  due = os.now() + after;
}

}  // namespace fake

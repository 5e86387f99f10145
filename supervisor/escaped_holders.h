// EscapedHolders: processes that left an instance's process group (an app
// that runs `setsid worker &`) but still hold one of baton's listening
// sockets. Signals to the group never reach them, so once the instance has
// ended they would keep the socket (and the port's accept queue) open,
// answering nobody, even after baton has exited. They are looked for each
// time an instance ends (only those older than every running instance, so a
// running instance's own setsid'd workers are never taken for one), named in
// the log by pid and command, and SIGKILLed
// (through a pidfd, so a reused pid is never hit) once the drain timeout of
// the instance they outlived has run out.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace baton {

class EscapedHolders {
 public:
  using Clock = std::chrono::steady_clock;
  /// What to look for, asked afresh at every scan.
  struct Scope {
    /// baton's listening sockets: inode and name.
    std::vector<std::pair<ino_t, std::string>> sockets;
    /// Process groups of the instances baton still tracks: their members
    /// are the app's, not escaped (signals to those groups reach them).
    std::vector<pid_t> groups;
    /// Main pids of the instances still running. A process that started
    /// after the oldest of them may be its worker, outside its group on
    /// purpose: it is left alone until that instance has ended too.
    std::vector<pid_t> running;
  };

  EscapedHolders(uv_loop_t* loop, std::function<Scope()> scope);
  ~EscapedHolders();
  EscapedHolders(const EscapedHolders&) = delete;
  EscapedHolders& operator=(const EscapedHolders&) = delete;

  /// Looks for escaped holders after `ended` ("generation 1 pid 12"); each
  /// one not known yet is logged and killed at `deadline`.
  void sweep(const std::string& ended, Clock::time_point deadline);
  /// True when no escaped holder is known to be alive.
  bool empty() const { return escapees_.empty(); }
  /// Called each time the last known escaped holder is gone (not when a
  /// sweep finds none).
  std::function<void()> on_empty;
  /// Closes the timer; nothing is killed after this.
  void close();

 private:
  struct Escapee {
    pid_t pid;
    std::string command;
    UniqueFd pidfd;
    Clock::time_point deadline;
    /// When SIGKILL was sent; zero before.
    Clock::time_point killed_at{};
  };
  static void on_timer(uv_timer_t* timer) noexcept;
  void scan(const std::string& ended, Clock::time_point deadline);
  void act();
  void arm();

  std::function<Scope()> scope_;
  uv_timer_t timer_{};
  bool closed_ = false;
  std::vector<Escapee> escapees_;
};

}  // namespace baton

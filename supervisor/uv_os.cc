// Spawning an app process with libuv and following it until every handle is
// closed; timers on the loop; the escaped-holder sweep.
#include "uv_os.h"

#include "log_ring.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command_runner.h"
#include "listen_socket.h"
#include "log_ring.h"
#include "probe.h"
#include "proc_stat.h"
#include "socket_holders.h"
#include "steering.h"

namespace baton {
namespace {

/// Lines longer than this are logged in pieces rather than buffered forever.
constexpr size_t kMaxLine = 8192;
/// How many stderr lines are kept for failure reports.
constexpr size_t kStderrTail = 20;
/// How long a retired process waits for its pipes to reach EOF.
constexpr std::chrono::milliseconds kPipeGrace{2000};

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

/// A libuv timer whose handle outlives the object until its close callback.
class UvTimer final : public Timer {
 public:
  UvTimer(uv_loop_t* loop, std::function<void()> fired)
      : handle_(new uv_timer_t{}), fired_(std::move(fired)) {
    uv_timer_init(loop, handle_);
    handle_->data = this;
  }
  ~UvTimer() override {
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;

  void arm(std::chrono::milliseconds after) override {
    // libuv measures from the time cached at the start of this loop turn;
    // uv_spawn may have blocked since (it waits for the exec), so refresh it.
    uv_update_time(handle_->loop);
    uv_timer_start(
        handle_,
        [](uv_timer_t* h) noexcept {
          if (auto* self = static_cast<UvTimer*>(h->data)) self->fired_();
        },
        static_cast<uint64_t>(after.count()), 0);
  }
  void cancel() override { uv_timer_stop(handle_); }

 private:
  uv_timer_t* handle_;
  std::function<void()> fired_;
};

/// A spawned process and its libuv handles: the process, its two output
/// pipes and the timer that bounds the wait for their EOF once retired.
class UvProcess final : public Process {
 public:
  static Result<std::unique_ptr<Process>> spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                int generation, Events events);
  ~UvProcess() override = default;

  pid_t pid() const override { return pid_; }
  void signal_group(int sig) override {
    if (pid_ <= 0) return;
    // Until the trampoline has run setpgid() the group does not exist yet.
    if (::kill(-pid_, sig) != 0 && errno == ESRCH) ::kill(pid_, sig);
  }
  bool group_alive() const override { return pid_ > 0 && ::kill(-pid_, 0) == 0; }
  void retire() override;
  const std::deque<std::string>& last_stderr() const override { return stderr_tail_; }

 private:
  struct Output;
  UvProcess() = default;
  static void on_handle_closed(uv_handle_t* handle) noexcept;
  void close_handle(uv_handle_t* handle);
  void close_all();
  bool pipes_closed() const;
  void emit_line(bool is_stderr, std::string_view line);
  void on_pipe_eof(uv_handle_t* pipe);

  uv_process_t process_{};
  uv_timer_t grace_{};
  std::unique_ptr<Output> out_, err_;
  /// Handles initialised and not yet closed (process, timer, two pipes).
  int open_handles_ = 0;
  pid_t pid_ = -1;
  int generation_ = 0;
  bool retired_ = false;
  Events events_;
  std::deque<std::string> stderr_tail_;
};

/// One of the app's output pipes, split into lines.
struct UvProcess::Output {
  uv_pipe_t pipe{};
  UvProcess* owner = nullptr;
  bool is_stderr = false;
  std::string partial;
  char buffer[16384];

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<Output*>(handle->data);
    *buf = uv_buf_init(self->buffer, sizeof self->buffer);
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<Output*>(stream->data);
    if (n < 0) {  // EOF, or the pipe broke: either way nothing more comes.
      if (!self->partial.empty()) self->owner->emit_line(self->is_stderr, self->partial);
      self->partial.clear();
      self->owner->on_pipe_eof(reinterpret_cast<uv_handle_t*>(stream));
      return;
    }
    self->consume(std::string_view(buf->base, static_cast<size_t>(n)));
  }

  void consume(std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        partial.append(data);
        if (partial.size() >= kMaxLine) flush();
        return;
      }
      partial.append(data.substr(0, nl));
      flush();
      data.remove_prefix(nl + 1);
    }
  }

  void flush() {
    if (!partial.empty() && partial.back() == '\r') partial.pop_back();
    owner->emit_line(is_stderr, partial);
    partial.clear();
  }
};

Result<std::unique_ptr<Process>> UvProcess::spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                  int generation, Events events) {
  // Pipes, not the socketpairs libuv's UV_CREATE_PIPE makes: an app can
  // open /dev/stdout, /dev/stderr or /proc/self/fd/1 when they are pipes,
  // and open(2) of a socket fails (ENXIO).
  UniqueFd read_ends[2], write_ends[2];
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("cannot create the app's output pipes");
    read_ends[i].reset(fds[0]);
    write_ends[i].reset(fds[1]);
  }
  std::unique_ptr<UvProcess> proc(new UvProcess());
  proc->generation_ = generation;
  proc->events_ = std::move(events);
  proc->out_ = std::make_unique<Output>();
  proc->err_ = std::make_unique<Output>();
  for (int i = 0; i < 2; ++i) {
    Output* o = i == 0 ? proc->out_.get() : proc->err_.get();
    uv_pipe_init(loop, &o->pipe, 0);
    o->pipe.data = o;
    o->owner = proc.get();
    ++proc->open_handles_;
    if (int rc = uv_pipe_open(&o->pipe, read_ends[i].get()); rc != 0) {
      spdlog::error("cannot watch the app's {}: {}", i == 0 ? "stdout" : "stderr", uv_strerror(rc));
      proc->close_handle(reinterpret_cast<uv_handle_t*>(&o->pipe));
    } else {
      (void)read_ends[i].release();  // the handle owns it now
    }
  }
  proc->err_->is_stderr = true;
  uv_timer_init(loop, &proc->grace_);
  proc->grace_.data = proc.get();
  ++proc->open_handles_;

  // stdin is /dev/null, stdout/stderr are pipes to baton, and each listening
  // socket lands at fd 3+i. libuv dup2()s these into place in the child and
  // leaves every other fd (all CLOEXEC in baton) to close on exec.
  std::vector<uv_stdio_container_t> stdio(3 + spec.fds.size());
  stdio[0].flags = UV_IGNORE;
  for (int i = 0; i < 2; ++i) {
    stdio[1 + i].flags = UV_INHERIT_FD;
    stdio[1 + i].data.fd = write_ends[i].get();
  }
  for (size_t i = 0; i < spec.fds.size(); ++i) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = spec.fds[i];
  }
  std::vector<char*> argv = c_strings(spec.argv);
  std::vector<char*> env = c_strings(spec.env);

  uv_process_options_t options{};
  options.file = argv[0];
  options.args = argv.data();
  options.env = env.data();
  options.cwd = spec.working_directory.empty() ? nullptr : spec.working_directory.c_str();
  // Not UV_PROCESS_DETACHED: setsid() would put the app in a new session,
  // and with sched_autogroup each session is its own CPU scheduling group; a
  // new one was seen starved for seconds under load. The trampoline makes
  // the app lead its own process group instead (setpgid), so drain and kill
  // signals reach its workers and a Ctrl-C at baton's terminal does not.
  options.flags = 0;
  options.stdio_count = static_cast<int>(stdio.size());
  options.stdio = stdio.data();
  options.exit_cb = [](uv_process_t* handle, int64_t status, int signal) noexcept {
    auto* self = static_cast<UvProcess*>(handle->data);
    self->events_.on_exit(status, signal);
  };
  proc->process_.data = proc.get();

  int rc = uv_spawn(loop, &proc->process_, &options);
  ++proc->open_handles_;  // uv_spawn initialises the handle even when it fails
  if (rc != 0) {
    // The handles must outlive their close callbacks: the object deletes
    // itself once they have run.
    proc->events_.on_released = [raw = proc.get()] { delete raw; };
    proc->close_all();
    (void)proc.release();
    std::string what = spec.argv.size() > 2 ? spec.argv[2] : "app";
    if (!spec.working_directory.empty()) {
      what += fmt::format(" in working directory {}", spec.working_directory);
    }
    return sys_error(fmt::format("cannot start {}", what), -rc);
  }
  proc->pid_ = proc->process_.pid;
  for (Output* o : {proc->out_.get(), proc->err_.get()}) {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&o->pipe))) continue;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&o->pipe), &Output::on_alloc, &Output::on_read);
  }
  return std::unique_ptr<Process>(std::move(proc));
}

bool UvProcess::pipes_closed() const {
  return uv_is_closing(reinterpret_cast<const uv_handle_t*>(&out_->pipe)) &&
         uv_is_closing(reinterpret_cast<const uv_handle_t*>(&err_->pipe));
}

void UvProcess::retire() {
  retired_ = true;
  close_handle(reinterpret_cast<uv_handle_t*>(&process_));
  if (pipes_closed()) return close_handle(reinterpret_cast<uv_handle_t*>(&grace_));
  // Let the pipes drain to EOF (so the app's last lines are logged), closing
  // them anyway after a grace period in case a process that left the group
  // still holds them.
  uv_update_time(grace_.loop);
  uv_timer_start(
      &grace_, [](uv_timer_t* h) noexcept { static_cast<UvProcess*>(h->data)->close_all(); },
      static_cast<uint64_t>(kPipeGrace.count()), 0);
}

void UvProcess::on_pipe_eof(uv_handle_t* pipe) {
  close_handle(pipe);
  if (retired_ && pipes_closed()) close_handle(reinterpret_cast<uv_handle_t*>(&grace_));
}

void UvProcess::close_all() {
  close_handle(reinterpret_cast<uv_handle_t*>(&process_));
  close_handle(reinterpret_cast<uv_handle_t*>(&grace_));
  close_handle(reinterpret_cast<uv_handle_t*>(&out_->pipe));
  close_handle(reinterpret_cast<uv_handle_t*>(&err_->pipe));
}

void UvProcess::close_handle(uv_handle_t* handle) {
  if (uv_is_closing(handle)) return;
  // Handle data is repointed at the process so one close callback serves all.
  handle->data = this;
  uv_close(handle, &UvProcess::on_handle_closed);
}

void UvProcess::on_handle_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<UvProcess*>(handle->data);
  if (--self->open_handles_ == 0 && self->events_.on_released) self->events_.on_released();
}

void UvProcess::emit_line(bool is_stderr, std::string_view line) {
  app_logger(is_stderr).info("[gen {} pid {}] {}", generation_, pid_, line);
  if (!is_stderr) return;
  stderr_tail_.emplace_back(line);
  if (stderr_tail_.size() > kStderrTail) stderr_tail_.pop_front();
}

}  // namespace

Result<std::unique_ptr<Process>> UvOs::spawn(const SpawnSpec& spec, int generation,
                                             Process::Events events) {
  return UvProcess::spawn(loop_, spec, generation, std::move(events));
}

pid_t UvOs::process_group_of(pid_t pid) const {
  auto st = read_proc_stat(pid);
  return st ? st->pgrp : -1;
}

pid_t UvOs::parent_of(pid_t pid) const {
  auto st = read_proc_stat(pid);
  return st ? st->ppid : -1;
}

std::string UvOs::command_name(pid_t pid) const {
  return baton::command_name(pid);
}

std::unique_ptr<Timer> UvOs::timer(std::function<void()> fired) {
  return std::make_unique<UvTimer>(loop_, std::move(fired));
}

void UvOs::watch_escaped(std::function<EscapeScope()> scope, std::function<void()> on_empty) {
  escaped_ = std::make_unique<EscapedHolders>(loop_, [scope = std::move(scope)] {
    EscapeScope s = scope();
    EscapedHolders::Scope out;
    for (const auto& [fd, name] : s.sockets) {
      auto inode = socket_inode(fd);
      bool known = std::any_of(out.sockets.begin(), out.sockets.end(),
                               [&](const auto& k) { return inode && k.first == *inode; });
      if (inode && !known) out.sockets.emplace_back(*inode, name);
    }
    out.groups = std::move(s.groups);
    out.running = std::move(s.running);
    return out;
  });
  escaped_->on_empty = std::move(on_empty);
}

void UvOs::sweep_escaped(const std::string& ended, Clock::time_point deadline) {
  if (escaped_) escaped_->sweep(ended, deadline);
}

void UvOs::close() {
  if (escaped_) escaped_->close();
}

namespace {

/// Calls `f` on the next loop iteration.
void call_soon(uv_loop_t* loop, std::function<void()> f) {
  auto* timer = new uv_timer_t;
  uv_timer_init(loop, timer);
  timer->data = new std::function<void()>(std::move(f));
  uv_timer_start(
      timer,
      [](uv_timer_t* t) {
        auto* fn = static_cast<std::function<void()>*>(t->data);
        (*fn)();
        delete fn;
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      },
      0, 0);
}

/// A probe or command as the lifecycle holds it. The lifecycle may drop it
/// from inside its own callback; the work underneath is then destroyed on
/// the next loop iteration, never with its callback on the stack, and
/// calls nothing back after the drop.
class LoopPending final : public Pending {
 public:
  explicit LoopPending(uv_loop_t* loop) : loop_(loop) {}
  ~LoopPending() override {
    *alive_ = false;
    if (!inner_) return;
    call_soon(loop_, [inner = std::shared_ptr<Pending>(std::move(inner_))] {});
  }
  /// `f` guarded: it does nothing once this is destroyed.
  template <typename F>
  auto guard(F f) {
    return [alive = alive_, f = std::move(f)](auto&&... args) {
      if (*alive) f(std::forward<decltype(args)>(args)...);
    };
  }
  std::unique_ptr<Pending> inner_;

 private:
  uv_loop_t* loop_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::unique_ptr<Pending> UvOs::probe(const ProbeSpec& spec, std::function<void(ProbeResult)> done) {
  auto pending = std::make_unique<LoopPending>(loop_);
  ProbeSpec resolved = spec;
  Result<ProbeTarget> target = spec.listener ? spec.listener->probe_target()
                                             : Result<ProbeTarget>(error("no stream socket"));
  if (!target) {
    // The config was checked against its sockets when it was loaded.
    ProbeResult failed{false, fmt::format("cannot reach this generation's listener alone: {}",
                                          target.error().message)};
    call_soon(loop_, pending->guard([done = std::move(done), failed] { done(failed); }));
    return pending;
  }
  resolved.target = target->target;
  resolved.source = target->source;
  pending->inner_ = start_probe(loop_, resolved, pending->guard(std::move(done)));
  return pending;
}

std::unique_ptr<Pending> UvOs::run(const CommandSpec& spec,
                                   std::function<void(const std::string&)> line,
                                   std::function<void(CommandResult)> done) {
  auto pending = std::make_unique<LoopPending>(loop_);
  pending->inner_ =
      run_command(loop_, spec, pending->guard(std::move(line)), pending->guard(std::move(done)));
  return pending;
}

Status UvOs::switch_to(const std::vector<SharedSocket>& sockets) {
  return baton::switch_to(sockets);
}

Status UvOs::share(const std::vector<SharedSocket>& sockets, uint32_t share) {
  return baton::share_with(sockets, share);
}

std::optional<int> UvOs::queued(const std::vector<SharedSocket>& sockets) {
  bool own = std::any_of(sockets.begin(), sockets.end(),
                         [](const SharedSocket& s) { return s->shared_reason().empty(); });
  if (!own) return std::nullopt;
  return queued_connections(sockets);
}

}  // namespace baton

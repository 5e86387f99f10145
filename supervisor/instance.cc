// Spawning an app process with libuv and following it until every handle
// is closed.
#include "instance.h"

#include <signal.h>

#include <spdlog/spdlog.h>

namespace baton {
namespace {

/// Lines longer than this are logged in pieces rather than buffered forever.
constexpr size_t kMaxLine = 8192;
/// How many stderr lines are kept for failure reports.
constexpr size_t kStderrTail = 20;
/// How long a retired instance waits for its pipes to reach EOF.
constexpr std::chrono::milliseconds kPipeGrace{2000};

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::kStarting:
      return "starting";
    case InstanceState::kReady:
      return "ready";
    case InstanceState::kDraining:
      return "draining";
    case InstanceState::kExited:
      return "exited";
  }
  return "?";
}

/// One of the app's output pipes, split into lines.
struct Instance::Output {
  uv_pipe_t pipe{};
  Instance* owner = nullptr;
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

Result<std::unique_ptr<Instance>> Instance::spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                  int generation, Callbacks callbacks) {
  std::unique_ptr<Instance> inst(new Instance());
  inst->generation_ = generation;
  inst->callbacks_ = std::move(callbacks);
  inst->out_ = std::make_unique<Output>();
  inst->err_ = std::make_unique<Output>();
  for (Output* o : {inst->out_.get(), inst->err_.get()}) {
    uv_pipe_init(loop, &o->pipe, 0);
    o->pipe.data = o;
    o->owner = inst.get();
    ++inst->open_handles_;
  }
  inst->err_->is_stderr = true;
  uv_timer_init(loop, &inst->timer_);
  inst->timer_.data = inst.get();
  ++inst->open_handles_;

  // stdin is /dev/null, stdout/stderr are pipes to baton, and each listening
  // socket lands at fd 3+i. libuv dup2()s these into place in the child and
  // leaves every other fd (all CLOEXEC in baton) to close on exec.
  std::vector<uv_stdio_container_t> stdio(3 + spec.fds.size());
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&inst->out_->pipe);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&inst->err_->pipe);
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
  options.exit_cb = &Instance::on_process_exit;
  inst->process_.data = inst.get();

  int rc = uv_spawn(loop, &inst->process_, &options);
  ++inst->open_handles_;  // uv_spawn initialises the handle even when it fails
  if (rc != 0) {
    // The handles must outlive their close callbacks: the object deletes
    // itself once they have run.
    inst->callbacks_.on_released = [](Instance& self) { delete &self; };
    inst->close();
    (void)inst.release();
    std::string what = spec.argv.size() > 2 ? spec.argv[2] : "app";
    if (!spec.working_directory.empty()) {
      what += fmt::format(" in working directory {}", spec.working_directory);
    }
    return sys_error(fmt::format("cannot start {}", what), -rc);
  }
  inst->pid_ = inst->process_.pid;
  // uv_spawn returns once the child has exec'd (the trampoline): that is
  // when the instance starts; time spent inside uv_spawn counts before it.
  inst->started_at = Clock::now();
  inst->notify_pid = inst->pid_;
  for (Output* o : {inst->out_.get(), inst->err_.get()}) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&o->pipe), &Output::on_alloc, &Output::on_read);
  }
  return inst;
}

Instance::~Instance() = default;

void Instance::signal_group(int sig) const {
  if (pid_ <= 0) return;
  // Until the trampoline has run setpgid() the group does not exist yet.
  if (::kill(-pid_, sig) != 0 && errno == ESRCH) ::kill(pid_, sig);
}

bool Instance::group_alive() const {
  return pid_ > 0 && ::kill(-pid_, 0) == 0;
}

void Instance::arm_timer(std::chrono::milliseconds after) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) return;
  // libuv measures from the time cached at the start of this loop turn;
  // uv_spawn may have blocked since (it waits for the exec), so refresh it.
  uv_update_time(timer_.loop);
  uv_timer_start(&timer_, &Instance::on_timer_fired, static_cast<uint64_t>(after.count()), 0);
}

void Instance::cancel_timer() {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) uv_timer_stop(&timer_);
}

void Instance::retire() {
  retired_ = true;
  close_handle(reinterpret_cast<uv_handle_t*>(&process_));
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&out_->pipe)) &&
      uv_is_closing(reinterpret_cast<uv_handle_t*>(&err_->pipe))) {
    close_handle(reinterpret_cast<uv_handle_t*>(&timer_));
  } else {
    arm_timer(kPipeGrace);
  }
}

void Instance::on_pipe_eof(uv_handle_t* pipe) {
  close_handle(pipe);
  if (retired_ && uv_is_closing(reinterpret_cast<uv_handle_t*>(&out_->pipe)) &&
      uv_is_closing(reinterpret_cast<uv_handle_t*>(&err_->pipe))) {
    close_handle(reinterpret_cast<uv_handle_t*>(&timer_));
  }
}

void Instance::close() {
  close_handle(reinterpret_cast<uv_handle_t*>(&process_));
  close_handle(reinterpret_cast<uv_handle_t*>(&timer_));
  close_handle(reinterpret_cast<uv_handle_t*>(&out_->pipe));
  close_handle(reinterpret_cast<uv_handle_t*>(&err_->pipe));
}

void Instance::close_handle(uv_handle_t* handle) {
  if (uv_is_closing(handle)) return;
  // Handle data is repointed at the instance so one close callback serves all.
  handle->data = this;
  uv_close(handle, &Instance::on_handle_closed);
}

void Instance::on_handle_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<Instance*>(handle->data);
  if (--self->open_handles_ == 0 && self->callbacks_.on_released) {
    self->callbacks_.on_released(*self);
  }
}

void Instance::on_process_exit(uv_process_t* handle, int64_t status, int signal) noexcept {
  auto* self = static_cast<Instance*>(handle->data);
  self->exited = true;
  self->callbacks_.on_exit(*self, status, signal);
}

void Instance::on_timer_fired(uv_timer_t* handle) noexcept {
  auto* self = static_cast<Instance*>(handle->data);
  if (self->retired_) return self->close();
  self->callbacks_.on_timer(*self);
}

void Instance::emit_line(bool is_stderr, std::string_view line) {
  spdlog::info("[gen {} pid {}] {}", generation_, pid_, line);
  if (!is_stderr) return;
  stderr_tail_.emplace_back(line);
  if (stderr_tail_.size() > kStderrTail) stderr_tail_.pop_front();
}

}  // namespace baton

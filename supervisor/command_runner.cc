// Running one command on the loop: spawn it in a session of its own with its
// output on one pipe, split the output into lines, kill its group when the
// timeout runs out, and report once it has exited and its output has ended.
#include "command_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "duration.h"
#include "unique_fd.h"

namespace baton {
namespace {

/// How long the output may stay open after the command exited: something it
/// started in the background may still hold the pipe.
constexpr Millis kOutputGrace{1'000};

/// libuv's text for a negative error code: "no such file or directory".
std::string uv_text(int rc) {
  char text[128];
  uv_strerror_r(rc, text, sizeof text);
  return text;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

/// `line` without a last UTF-8 character that the cut at the limit split.
void drop_split_character(std::string& line) {
  size_t lead = line.size();
  // Back over continuation bytes (10xxxxxx) to the character's first byte.
  while (lead > 0 && line.size() - lead < 4 &&
         (static_cast<unsigned char>(line[lead - 1]) & 0xC0) == 0x80) {
    --lead;
  }
  if (lead == 0) return;
  auto first = static_cast<unsigned char>(line[lead - 1]);
  size_t length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1;
  if (line.size() - (lead - 1) < length) line.resize(lead - 1);
}

/// One command and its libuv handles: the process, its output pipe and one
/// timer. It deletes itself once it is both finished or cancelled and every
/// handle's close callback has run, whichever comes last.
class CommandRun {
 public:
  CommandRun(uv_loop_t* loop, const CommandSpec& spec, std::function<void(const std::string&)> line,
             std::function<void(CommandResult)> done)
      : loop_(loop), spec_(spec), line_(std::move(line)), done_(std::move(done)) {}
  CommandRun(const CommandRun&) = delete;
  CommandRun& operator=(const CommandRun&) = delete;

  /// Spawns the command and arms its timeout.
  void start();
  /// The Pending was destroyed: kill the group, never call back.
  void cancel();

 private:
  ~CommandRun() = default;
  Status spawn();
  std::string start_failure(int rc) const;
  void on_exit(int64_t exit_status, int term_signal);
  void take_output(std::string_view data);
  void end_line();
  void end_output();
  void finish();
  void kill_group();
  void close(uv_handle_t* handle);
  void close_handles();
  void release_if_unused();

  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept;
  static void on_closed(uv_handle_t* handle) noexcept;

  uv_loop_t* loop_;
  CommandSpec spec_;
  /// Called for each line while the run is not finished (never cleared: the
  /// Pending may be destroyed from inside it).
  std::function<void(const std::string&)> line_;
  /// Empty once called, or once the Pending is gone.
  std::function<void(CommandResult)> done_;
  Clock::time_point started_ = Clock::now();

  uv_process_t process_{};
  /// uv_spawn was called: the process handle needs closing.
  bool process_initialised_ = false;
  /// Spawned and not yet reaped: its pid, and its process group, are its own.
  bool running_ = false;
  pid_t pid_ = -1;
  /// stdout and stderr of the command (and of whatever it starts).
  uv_pipe_t output_{};
  bool output_ended_ = false;
  /// The timeout while the command runs, then the grace for its output to
  /// end; fired at once to report a failure to start (so that done_ is
  /// never called from inside run_command).
  uv_timer_t timer_{};
  bool timed_out_ = false;
  /// It could not be started: the timer reports that.
  bool start_failed_ = false;

  /// What done_ will get, filled in as the run goes.
  CommandResult result_;
  /// The line being read, at most kCommandLineLimit bytes of it.
  std::string partial_;
  /// The line being read is over the limit: its rest is dropped.
  bool cut_ = false;
  std::deque<std::string> tail_;
  char buffer_[16384];

  /// Handles initialised whose close callback has not run yet.
  int open_handles_ = 0;
  /// done_ was called or the run was cancelled; handles are closing.
  bool finished_ = false;
  /// The Pending still exists.
  bool owned_ = true;
};

/// What run_command returns: cancels the run when destroyed.
class PendingCommand final : public Pending {
 public:
  explicit PendingCommand(CommandRun* run) : run_(run) {}
  ~PendingCommand() override { run_->cancel(); }
  PendingCommand(const PendingCommand&) = delete;
  PendingCommand& operator=(const PendingCommand&) = delete;

 private:
  /// Alive until cancel() (it waits for the Pending to go).
  CommandRun* run_;
};

void CommandRun::start() {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_pipe_init(loop_, &output_, 0);
  output_.data = this;
  open_handles_ += 2;
  if (Status spawned = spawn(); !spawned) {
    result_.outcome = fmt::format("could not be started: {}", spawned.error().message);
    result_.took = std::chrono::duration_cast<Millis>(Clock::now() - started_);
    start_failed_ = true;
    output_ended_ = true;
    uv_timer_start(&timer_, &CommandRun::on_timer, 0, 0);
    return;
  }
  // uv_spawn blocked until the exec: the timeout counts from now.
  uv_update_time(loop_);
  auto timeout = static_cast<uint64_t>(std::max<int64_t>(spec_.timeout.count(), 0));
  uv_timer_start(&timer_, &CommandRun::on_timer, timeout, 0);
}

Status CommandRun::spawn() {
  if (spec_.argv.empty()) return error("no command given");
  // One pipe for stdout and stderr, made here (libuv would make one for
  // each), so that lines keep the order they were written in.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return error(fmt::format("cannot create its output pipe: {}", uv_text(-errno)));
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  if (int rc = uv_pipe_open(&output_, read_end.get()); rc != 0) {
    return error(fmt::format("cannot watch its output pipe: {}", uv_text(rc)));
  }
  (void)read_end.release();  // the handle owns it now

  std::vector<uv_stdio_container_t> stdio(3);
  stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for it
  for (int fd : {1, 2}) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = write_end.get();
  }
  std::vector<char*> argv = c_strings(spec_.argv);
  std::vector<char*> env = c_strings(spec_.env);
  uv_process_options_t options{};
  options.file = argv[0];
  options.args = argv.data();
  options.env = env.data();
  options.cwd = spec_.working_directory.empty() ? nullptr : spec_.working_directory.c_str();
  // setsid(): the command leads a new process group, so the timeout's
  // SIGKILL reaches whatever it started, and a Ctrl-C at baton's terminal
  // does not.
  options.flags = UV_PROCESS_DETACHED;
  options.stdio_count = static_cast<int>(stdio.size());
  options.stdio = stdio.data();
  options.exit_cb = [](uv_process_t* handle, int64_t exit_status, int term_signal) noexcept {
    static_cast<CommandRun*>(handle->data)->on_exit(exit_status, term_signal);
  };
  process_.data = this;
  int rc = uv_spawn(loop_, &process_, &options);
  process_initialised_ = true;  // even when it failed
  ++open_handles_;
  // Only the command holds the write end now: the output ends when it, and
  // everything it started, have closed it.
  write_end.reset();
  if (rc != 0) return error(start_failure(rc));
  pid_ = process_.pid;
  running_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&output_), &CommandRun::on_alloc,
                &CommandRun::on_read);
  return {};
}

/// Why uv_spawn failed: the working directory when the child could not enter
/// it (uv_spawn tells ENOENT from chdir and from exec apart no other way).
std::string CommandRun::start_failure(int rc) const {
  const std::string& dir = spec_.working_directory;
  if (!dir.empty() && ::access(dir.c_str(), X_OK) != 0) {
    return fmt::format("working directory {}: {}", dir, uv_text(-errno));
  }
  return uv_text(rc);
}

void CommandRun::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<CommandRun*>(timer->data);
  if (self->start_failed_) return self->finish();
  if (self->running_) {
    // The timeout: the exit follows the kill.
    self->timed_out_ = true;
    self->kill_group();
    return;
  }
  // Exited a while ago, and something it left behind still holds the pipe.
  self->end_output();
}

void CommandRun::on_exit(int64_t exit_status, int term_signal) {
  running_ = false;
  close(reinterpret_cast<uv_handle_t*>(&process_));
  if (finished_) return;  // cancelled: it was only waiting to be reaped
  result_.took = std::chrono::duration_cast<Millis>(Clock::now() - started_);
  result_.passed = !timed_out_ && term_signal == 0 && exit_status == 0;
  if (timed_out_) {
    result_.outcome = fmt::format("timed out after {}", format_duration(spec_.timeout));
  } else if (term_signal != 0) {
    result_.outcome = fmt::format("was killed by {}", signal_name(term_signal));
  } else {
    result_.outcome = fmt::format("exited with status {}", exit_status);
  }
  if (output_ended_) return finish();
  uv_update_time(loop_);
  uv_timer_start(&timer_, &CommandRun::on_timer, static_cast<uint64_t>(kOutputGrace.count()), 0);
}

void CommandRun::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<CommandRun*>(handle->data);
  *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
}

void CommandRun::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<CommandRun*>(stream->data);
  if (n > 0) return self->take_output(std::string_view(buf->base, static_cast<size_t>(n)));
  if (n < 0) self->end_output();  // EOF, or the pipe broke: nothing more comes
}

void CommandRun::take_output(std::string_view data) {
  while (!data.empty() && !finished_) {
    size_t newline = data.find('\n');
    std::string_view piece = data.substr(0, newline);
    size_t room = kCommandLineLimit - partial_.size();
    if (piece.size() > room) cut_ = true;
    partial_.append(piece.substr(0, room));
    if (newline == std::string_view::npos) return;
    end_line();
    data.remove_prefix(newline + 1);
  }
}

void CommandRun::end_line() {
  std::string line = std::move(partial_);
  partial_.clear();
  if (cut_) {
    drop_split_character(line);
  } else if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  cut_ = false;
  tail_.push_back(line);
  if (tail_.size() > kCommandOutputLines) tail_.pop_front();
  if (line_) line_(line);
}

void CommandRun::end_output() {
  if (output_ended_) return;
  output_ended_ = true;
  if (!partial_.empty() || cut_) end_line();
  close(reinterpret_cast<uv_handle_t*>(&output_));
  if (!running_ && !finished_) finish();
}

void CommandRun::finish() {
  if (finished_) return;
  finished_ = true;
  close_handles();
  result_.output.assign(tail_.begin(), tail_.end());
  // Moved out first: `done` may destroy the Pending, which clears done_. The
  // run itself lives on until the close callbacks have run.
  std::function<void(CommandResult)> done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(result_));
}

void CommandRun::cancel() {
  owned_ = false;
  done_ = nullptr;
  if (!finished_) {
    finished_ = true;
    kill_group();
    close_handles();
  }
  release_if_unused();
}

void CommandRun::kill_group() {
  // Only while it is not reaped: until then no other process can have its
  // pid, or its group's id.
  if (running_ && ::kill(-pid_, SIGKILL) != 0) ::kill(pid_, SIGKILL);
}

void CommandRun::close(uv_handle_t* handle) {
  if (!uv_is_closing(handle)) uv_close(handle, &CommandRun::on_closed);
}

void CommandRun::close_handles() {
  close(reinterpret_cast<uv_handle_t*>(&timer_));
  close(reinterpret_cast<uv_handle_t*>(&output_));
  // A running process's handle stays open until its exit callback has
  // reaped it (on_exit closes it).
  if (process_initialised_ && !running_) close(reinterpret_cast<uv_handle_t*>(&process_));
}

void CommandRun::on_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<CommandRun*>(handle->data);
  --self->open_handles_;
  self->release_if_unused();
}

void CommandRun::release_if_unused() {
  if (!owned_ && open_handles_ == 0) delete this;
}

}  // namespace

std::unique_ptr<Pending> run_command(uv_loop_t* loop, const CommandSpec& spec,
                                     std::function<void(const std::string&)> line,
                                     std::function<void(CommandResult)> done) {
  auto* run = new CommandRun(loop, spec, std::move(line), std::move(done));
  auto pending = std::make_unique<PendingCommand>(run);
  run->start();
  return pending;
}

}  // namespace baton

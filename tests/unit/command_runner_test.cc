// Unit tests for command_runner: real commands (sh, env, pwd, cat, sleep)
// run on a real loop, every wait bounded; processes the tests start are
// checked to be gone by pid.
#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command_runner.h"
#include "test_loop.h"
#include "unique_fd.h"

using baton::Clock;
using baton::CommandResult;
using baton::CommandSpec;
using baton::kCommandLineLimit;
using baton::kCommandOutputLines;
using baton::Millis;
using baton::run_command;
using baton::UniqueFd;
using test_loop::kLimit;
using test_loop::TestLoop;

/// Checks a list of lines, printing the actual one when it differs; each
/// argument is evaluated once. (Not a doctest::StringMaker: lifecycle_test.cc
/// has one for this type.)
#define CHECK_LINES(actual, ...)                                                 \
  do {                                                                           \
    const std::vector<std::string> actual_lines = (actual);                      \
    const std::string shown = fmt::format("actual: {}", actual_lines);           \
    CHECK_MESSAGE(actual_lines == std::vector<std::string>(__VA_ARGS__), shown); \
  } while (false)

namespace {

const std::vector<std::string> kPath = {"PATH=/usr/bin:/bin"};

CommandSpec shell(const std::string& script, Millis timeout = kLimit) {
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = kPath;
  spec.timeout = timeout;
  return spec;
}

/// One command run to its end, and the lines `line` got on the way.
struct Run {
  CommandResult result;
  std::vector<std::string> lines;
};

/// Runs `spec` to its end: `done` must come later than run_command's return,
/// within the limit, and exactly once.
Run run_once(TestLoop& loop, const CommandSpec& spec) {
  Run run;
  int calls = 0;
  auto pending = run_command(
      loop.get(), spec, [&](const std::string& line) { run.lines.push_back(line); },
      [&](CommandResult r) {
        ++calls;
        run.result = std::move(r);
      });
  CHECK(calls == 0);
  REQUIRE(loop.run_until([&] { return calls > 0; }));
  pending.reset();
  CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
  CHECK(calls == 1);
  return run;
}

/// No process has this pid any more (it was reaped).
bool gone(pid_t pid) {
  return ::kill(pid, 0) == -1 && errno == ESRCH;
}

pid_t pid_of(const std::string& line) {
  return static_cast<pid_t>(std::stol(line));
}

/// A pidfd for `pid`, readable once it has exited; invalid where the kernel
/// has none (before 5.3).
UniqueFd pidfd_of(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

/// Whether the process behind `pidfd` exits within the limit.
bool exits(const UniqueFd& pidfd) {
  pollfd p{pidfd.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(kLimit.count())) == 1;
}

/// A fresh directory, removed at the end; its path with symlinks resolved.
class WorkDir {
 public:
  WorkDir() {
    char name[] = "/tmp/baton-command-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    char real[PATH_MAX];
    REQUIRE(::realpath(name, real) != nullptr);
    path_ = real;
  }
  ~WorkDir() { ::rmdir(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("command: exit status 0 passes, any other fails") {
  TestLoop loop;
  Run ok = run_once(loop, shell("exit 0"));
  CHECK(ok.result.passed);
  CHECK(ok.result.outcome == "exited with status 0");
  CHECK(ok.result.output.empty());
  CHECK(ok.result.took < kLimit);

  Run three = run_once(loop, shell("exit 3"));
  CHECK_FALSE(three.result.passed);
  CHECK(three.result.outcome == "exited with status 3");
}

TEST_CASE("command: a signal that ends it is named") {
  TestLoop loop;
  Run r = run_once(loop, shell("kill -TERM $$"));
  CHECK_FALSE(r.result.passed);
  CHECK(r.result.outcome == "was killed by SIGTERM");
}

TEST_CASE("command: stdout and stderr lines arrive in the order written") {
  TestLoop loop;
  Run r = run_once(loop, shell("echo one; echo two >&2; printf 'three\\r\\n\\n'; printf four >&2"));
  std::vector<std::string> expected = {"one", "two", "three", "", "four"};
  CHECK_LINES(r.lines, expected);
  CHECK_LINES(r.result.output, expected);
  CHECK(r.result.passed);
}

TEST_CASE("command: the result keeps the last lines, the line callback gets every one") {
  TestLoop loop;
  Run r = run_once(loop, shell("seq 1 25; exit 1"));
  std::vector<std::string> all, tail;
  for (int i = 1; i <= 25; ++i) all.push_back(std::to_string(i));
  for (int i = 25 - static_cast<int>(kCommandOutputLines) + 1; i <= 25; ++i) {
    tail.push_back(std::to_string(i));
  }
  CHECK_LINES(r.lines, all);
  CHECK_LINES(r.result.output, tail);
  CHECK(r.result.outcome == "exited with status 1");
}

TEST_CASE("command: long lines are cut at 1 KiB, never inside a UTF-8 character") {
  TestLoop loop;
  SUBCASE("ascii") {
    Run r = run_once(loop, shell("head -c 3000 /dev/zero | tr '\\0' a; echo; echo next"));
    std::vector<std::string> expected = {std::string(kCommandLineLimit, 'a'), "next"};
    CHECK_LINES(r.result.output, expected);
  }
  SUBCASE("two-byte characters from an odd offset") {
    // "a" then 600 "é": the cut at 1024 bytes would split the 512th "é".
    Run r = run_once(loop, shell("printf a; i=0; while [ $i -lt 600 ]; do printf '\\303\\251'; "
                                 "i=$((i+1)); done"));
    std::string expected = "a";
    for (int i = 0; i < 511; ++i) expected += "\xc3\xa9";
    REQUIRE(r.result.output.size() == 1);
    CHECK(r.result.output[0].size() == kCommandLineLimit - 1);
    CHECK(r.result.output[0] == expected);
  }
}

TEST_CASE("command: the timeout kills its process group") {
  TestLoop loop;
  // The shell reports its pid and that of a child in its group, then waits.
  Run r;
  std::optional<UniqueFd> child;
  int calls = 0;
  auto pending = run_command(
      loop.get(), shell("sleep 30 & echo $$ $!; wait", Millis{100}),
      [&](const std::string& line) {
        r.lines.push_back(line);
        std::istringstream in(line);
        pid_t shell_pid = 0, sleep_pid = 0;
        in >> shell_pid >> sleep_pid;
        child = pidfd_of(sleep_pid);
      },
      [&](CommandResult result) {
        ++calls;
        r.result = std::move(result);
      });
  auto began = Clock::now();
  REQUIRE(loop.run_until([&] { return calls > 0; }));
  auto took = Clock::now() - began;
  CHECK_FALSE(r.result.passed);
  CHECK(r.result.outcome == "timed out after 100ms");
  CHECK(r.result.took >= Millis{95});
  CHECK(took < Millis{3000});
  REQUIRE(r.lines.size() == 1);
  CHECK(gone(pid_of(r.lines[0])));
  // The background sleep was in the group too (reaped by whoever adopted it).
  REQUIRE(child.has_value());
  if (child->valid()) CHECK(exits(*child));
}

TEST_CASE("command: done waits up to 1s for output a background process keeps open") {
  TestLoop loop;
  auto began = Clock::now();
  Run r = run_once(loop, shell("sleep 30 & echo $!"));
  auto waited = Clock::now() - began;
  CHECK(r.result.passed);
  CHECK(r.result.outcome == "exited with status 0");
  REQUIRE(r.result.output.size() == 1);
  CHECK(r.result.took < Millis{900});
  CHECK(waited >= Millis{950});
  CHECK(waited < Millis{3000});
  pid_t sleeper = pid_of(r.result.output[0]);
  CHECK(::kill(sleeper, SIGKILL) == 0);  // still running: the test ends it
}

TEST_CASE("command: a program that cannot be started is reported later, not at once") {
  TestLoop loop;
  SUBCASE("no such program") {
    CommandSpec spec;
    spec.argv = {"/nonexistent/baton-test-program", "--flag"};
    Run r = run_once(loop, spec);  // checks that done came after run_command
    CHECK_FALSE(r.result.passed);
    CHECK(r.result.outcome == "could not be started: no such file or directory");
    CHECK(r.result.output.empty());
  }
  SUBCASE("no such working directory") {
    CommandSpec spec;
    spec.argv = {"/bin/true"};
    spec.working_directory = "/nonexistent/baton-test-dir";
    Run r = run_once(loop, spec);
    CHECK(r.result.outcome ==
          "could not be started: working directory /nonexistent/baton-test-dir: no such file or "
          "directory");
  }
  SUBCASE("no command") {
    Run r = run_once(loop, CommandSpec{});
    CHECK(r.result.outcome == "could not be started: no command given");
  }
}

TEST_CASE("command: runs with exactly the environment and working directory given") {
  TestLoop loop;
  SUBCASE("environment") {
    CommandSpec spec;
    spec.argv = {"/usr/bin/env"};
    spec.env = {"FOO=bar", "BATON_TEST=two words"};
    Run r = run_once(loop, spec);
    CHECK_LINES(r.result.output, spec.env);
    CHECK(r.result.passed);
  }
  SUBCASE("no environment at all") {
    CommandSpec spec;
    spec.argv = {"/usr/bin/env"};
    CHECK(run_once(loop, spec).result.output.empty());
  }
  SUBCASE("working directory") {
    WorkDir dir;
    CommandSpec spec;
    spec.argv = {"/bin/pwd"};
    spec.working_directory = dir.path();
    Run r = run_once(loop, spec);
    CHECK_LINES(r.result.output, {dir.path()});
  }
  SUBCASE("stdin is /dev/null") {
    CommandSpec spec;
    spec.argv = {"/bin/readlink", "/proc/self/fd/0"};
    CHECK_LINES(run_once(loop, spec).result.output, {"/dev/null"});
  }
}

TEST_CASE("command: runs in a session and process group of its own") {
  TestLoop loop;
  CommandSpec spec;
  spec.argv = {"/bin/cat", "/proc/self/stat"};
  Run r = run_once(loop, spec);
  REQUIRE(r.result.output.size() == 1);
  // "pid (comm) state ppid pgrp session ..."
  const std::string& stat = r.result.output[0];
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string state;
  pid_t parent = 0, group = 0, session = 0;
  fields >> state >> parent >> group >> session;
  pid_t pid = pid_of(stat);
  CHECK(parent == ::getpid());
  CHECK(group == pid);
  CHECK(session == pid);
}

TEST_CASE("command: destroying the Pending kills the command, and never calls back") {
  TestLoop loop;
  int calls = 0;
  std::vector<std::string> lines;
  auto pending = run_command(
      loop.get(), shell("echo $$; exec sleep 30"),
      [&](const std::string& line) { lines.push_back(line); }, [&](CommandResult) { ++calls; });
  SUBCASE("once it runs") {
    REQUIRE(loop.run_until([&] { return !lines.empty(); }));
    pid_t pid = pid_of(lines[0]);
    pending.reset();
    // The loop goes idle only once the process handle has reaped it.
    CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
    CHECK(gone(pid));
  }
  SUBCASE("before the loop ran at all") {
    pending.reset();
    CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
  }
  CHECK(calls == 0);
}

TEST_CASE("command: the Pending may be destroyed from inside its line callback") {
  TestLoop loop;
  std::unique_ptr<baton::Pending> pending;
  std::vector<std::string> lines;
  int calls = 0;
  pending = run_command(
      loop.get(), shell("echo $$; echo more; exec sleep 30"),
      [&](const std::string& line) {
        lines.push_back(line);
        pending.reset();
      },
      [&](CommandResult) { ++calls; });
  REQUIRE(loop.run_until([&] { return !lines.empty(); }));
  pid_t pid = pid_of(lines[0]);
  CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
  // Nothing after the cancel, even from the same read.
  CHECK_LINES(lines, {lines[0]});
  CHECK(calls == 0);
  CHECK(gone(pid));
}

TEST_CASE("command: the Pending may be destroyed from inside done") {
  TestLoop loop;
  std::unique_ptr<baton::Pending> pending;
  std::optional<CommandResult> result;
  pending = run_command(loop.get(), shell("echo hi"), nullptr, [&](CommandResult r) {
    result = std::move(r);
    pending.reset();
  });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  CHECK(result->passed);
  CHECK_LINES(result->output, {"hi"});
  CHECK(pending == nullptr);
}

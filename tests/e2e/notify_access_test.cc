// End-to-end test of notify_access: a wrapper script that starts the app
// as its child, where the app's own READY=1 comes from a pid other than the
// main one. With "exec" it counts and gates the reload; with "main" it does
// not, the reload times out, and the log and the reply say why.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "harness.h"

using namespace e2e;

namespace {

std::string config(const std::string& app, const std::string& access) {
  return fmt::format(
      "command = [\"{}\"]\ncontrol = \"control.sock\"\nnotify_access = \"{}\"\n"
      "ready_timeout = \"1s\"\ndrain_timeout = \"5s\"\n"
      "[[socket]]\nname = \"http\"\nlisten = \"tcp://127.0.0.1:0\"\n",
      app, access);
}

}  // namespace

TEST_CASE("notify_access: a wrapper's child's READY=1 counts with exec, not with main") {
  TempDir dir;
  // The app runs as the wrapper's child (its own LISTEN_PID, so that
  // sd_listen_fds() finds its sockets) and sends READY=1 from its own pid.
  // The wrapper waits for it through its drain, so that it stays the
  // parent of every message the app sends (an orphan is no one's child).
  std::string wrapper =
      dir.write("wrapper.sh", fmt::format("#!/bin/sh\nsh -c 'LISTEN_PID=$$ exec {}' &\nchild=$!\n"
                                          "trap 'wait $child; exit 0' TERM\nwait $child\n",
                                          hello_bin()));
  REQUIRE(chmod(wrapper.c_str(), 0755) == 0);
  dir.write("baton.toml", config(wrapper, "exec"));
  Baton baton(dir, {"-c", dir.file("baton.toml")}, dir.file("control.sock"));
  REQUIRE(baton.wait_ready());
  CommandResult ok = run_command({baton_bin(), "reload", "--control", baton.control()}, 20s);
  CAPTURE(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(baton.wait_instance("ready", 2) > 0);

  dir.write("baton.toml", config(wrapper, "main"));
  CommandResult refused = run_command({baton_bin(), "reload", "--control", baton.control()}, 20s);
  CAPTURE(refused.err);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("no READY=1 within ready_timeout (1s)") != std::string::npos);
  CHECK(refused.err.find("a READY=1 came from pid ") != std::string::npos);
  CAPTURE(baton.log());
  CHECK(baton.log().find("with notify_access = \"main\" only the main pid's messages count") !=
        std::string::npos);
  // Generation 2 serves on, untouched.
  CHECK(baton.status()["generation"] == 2);
}

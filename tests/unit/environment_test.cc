// Unit tests for the app's environment.
#include <doctest/doctest.h>

#include <chrono>

#include "environment.h"

using baton::Environment;

TEST_CASE("environment: set replaces in place, erase removes, order is first set") {
  Environment env({"PATH=/bin", "HOME=/root", "BARE"});
  env.set("HOME", "/home/app");
  env.set("NEW", "1");
  env.erase("PATH");
  CHECK(env.entries() == std::vector<std::string>{"HOME=/home/app", "BARE=", "NEW=1"});
  REQUIRE(env.get("HOME"));
  CHECK(*env.get("HOME") == "/home/app");
  CHECK(env.get("PATH") == nullptr);
  env.set("PATH", "/usr/bin");
  CHECK(env.entries().back() == "PATH=/usr/bin");
}

TEST_CASE("environment: 200,000 variables are merged in linear time") {
  Environment env({"A=1"});
  for (int i = 0; i < 200'000; ++i) env.set("K" + std::to_string(i), "v");
  for (int i = 0; i < 200'000; i += 2) env.set("K" + std::to_string(i), "w");
  auto entries = env.entries();
  CHECK(entries.size() == 200'001);
  CHECK(entries[1] == "K0=w");
  CHECK(entries[2] == "K1=v");
}

TEST_CASE("environment: what describes baton or its unit is not inherited") {
  const char* raw[] = {"PATH=/bin",
                       "MAINPID=10",
                       "MANAGERPID=1",
                       "SYSTEMD_EXEC_PID=10",
                       "INVOCATION_ID=abc",
                       "TRIGGER_UNIT=x.timer",
                       "MEMORY_PRESSURE_WATCH=/sys/fs/cgroup/x/memory.pressure",
                       "MEMORY_PRESSURE_WRITE=c29tZQ==",
                       "BATON_LD_PRELOAD=/evil.so",
                       "BATON_SHIM_DRAIN_SIGNAL=15",
                       "LISTEN_FDS=3",
                       "LISTEN_PID=10",
                       "LISTEN_FDNAMES=a",
                       "NOTIFY_SOCKET=/run/systemd/notify",
                       "WATCHDOG_USEC=1",
                       "WATCHDOG_PID=10",
                       "JOURNAL_STREAM=8:9",
                       nullptr};
  auto env = baton::inherited_environment(const_cast<char**>(raw));
  CHECK(env == std::vector<std::string>{"PATH=/bin", "INVOCATION_ID=abc", "TRIGGER_UNIT=x.timer"});
}

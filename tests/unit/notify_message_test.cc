// Tests parse_notify_message: decoding sd_notify datagrams (newline-separated
// KEY=VALUE lines) into the fields baton acts on.
#include <doctest/doctest.h>

#include "notify_message.h"

using baton::NotifyMessage;
using baton::parse_notify_message;

TEST_CASE("an empty datagram sets nothing") {
  NotifyMessage m = parse_notify_message("");
  CHECK_FALSE(m.ready);
  CHECK_FALSE(m.reloading);
  CHECK_FALSE(m.stopping);
  CHECK_FALSE(m.watchdog);
  CHECK_FALSE(m.fdstore);
  CHECK_FALSE(m.barrier);
  CHECK_FALSE(m.status.has_value());
  CHECK_FALSE(m.main_pid.has_value());
  CHECK_FALSE(m.errno_value.has_value());
  CHECK_FALSE(m.extend_timeout_usec.has_value());
}

TEST_CASE("READY=1 marks the message ready") {
  CHECK(parse_notify_message("READY=1").ready);
  CHECK(parse_notify_message("READY=1\n").ready);
}

TEST_CASE("READY with any value other than 1 is not ready") {
  CHECK_FALSE(parse_notify_message("READY=0").ready);
  CHECK_FALSE(parse_notify_message("READY=").ready);
  CHECK_FALSE(parse_notify_message("READY=yes").ready);
}

TEST_CASE("several lines are all decoded") {
  NotifyMessage m = parse_notify_message("READY=1\nSTATUS=serving\nMAINPID=4242\n");
  CHECK(m.ready);
  CHECK(m.status == "serving");
  CHECK(m.main_pid == 4242);
}

TEST_CASE("STATUS keeps everything after the first '='") {
  CHECK(parse_notify_message("STATUS=a=b c=d").status == "a=b c=d");
  CHECK(parse_notify_message("STATUS=").status == "");
}

TEST_CASE("MAINPID is read when it is a positive number and ignored otherwise") {
  CHECK(parse_notify_message("MAINPID=123").main_pid == 123);
  CHECK_FALSE(parse_notify_message("MAINPID=abc").main_pid.has_value());
  CHECK_FALSE(parse_notify_message("MAINPID=12x").main_pid.has_value());
  CHECK_FALSE(parse_notify_message("MAINPID=0").main_pid.has_value());
  CHECK_FALSE(parse_notify_message("MAINPID=-5").main_pid.has_value());
  CHECK_FALSE(parse_notify_message("MAINPID=").main_pid.has_value());
}

TEST_CASE("ERRNO and EXTEND_TIMEOUT_USEC are read as numbers") {
  CHECK(parse_notify_message("ERRNO=98").errno_value == 98);
  CHECK_FALSE(parse_notify_message("ERRNO=-1").errno_value.has_value());
  CHECK(parse_notify_message("EXTEND_TIMEOUT_USEC=5000000").extend_timeout_usec == 5'000'000u);
  CHECK_FALSE(parse_notify_message("EXTEND_TIMEOUT_USEC=soon").extend_timeout_usec.has_value());
}

TEST_CASE("the boolean keys are set by =1") {
  NotifyMessage m =
      parse_notify_message("STOPPING=1\nWATCHDOG=1\nFDSTORE=1\nBARRIER=1\nRELOADING=1");
  CHECK(m.stopping);
  CHECK(m.watchdog);
  CHECK(m.fdstore);
  CHECK(m.barrier);
  CHECK(m.reloading);
  CHECK_FALSE(m.ready);
}

TEST_CASE("unknown keys and lines without '=' are ignored") {
  NotifyMessage m = parse_notify_message("X_CUSTOM=1\nREADY\n=1\nhello world\nREADY=1");
  CHECK(m.ready);
  CHECK_FALSE(m.status.has_value());
  CHECK_FALSE(parse_notify_message("READY").ready);
  CHECK_FALSE(parse_notify_message("ready=1").ready);
}

TEST_CASE("empty lines and a trailing newline change nothing") {
  NotifyMessage m = parse_notify_message("\n\nSTATUS=ok\n\n");
  CHECK(m.status == "ok");
  CHECK_FALSE(m.ready);
}

// Tests parse_duration and format_duration: the human-readable durations used
// in configs ("500ms", "1m30s") and in messages.
#include <doctest/doctest.h>

#include <string>

#include <fmt/format.h>

#include "duration.h"

using baton::format_duration;
using baton::Millis;
using baton::parse_duration;

namespace {

/// The error message for `text`, which must fail to parse.
std::string duration_error(std::string_view text) {
  auto d = parse_duration(text);
  REQUIRE_FALSE(d.ok());
  return d.error().message;
}

}  // namespace

TEST_CASE("parse_duration reads a single number with a unit") {
  CHECK(parse_duration("500ms").value() == Millis(500));
  CHECK(parse_duration("30s").value() == Millis(30'000));
  CHECK(parse_duration("2m").value() == Millis(120'000));
  CHECK(parse_duration("1h").value() == Millis(3'600'000));
  CHECK(parse_duration("0s").value() == Millis(0));
}

TEST_CASE("parse_duration sums several parts and accepts fractions") {
  CHECK(parse_duration("1m30s").value() == Millis(90'000));
  CHECK(parse_duration("1h2m3s4ms").value() == Millis(3'723'004));
  CHECK(parse_duration("1.5s").value() == Millis(1'500));
}

TEST_CASE("parse_duration rounds sub-millisecond durations up") {
  CHECK(parse_duration("250us").value() == Millis(1));
  CHECK(parse_duration("1us").value() == Millis(1));
  CHECK(parse_duration("1000us").value() == Millis(1));
  CHECK(parse_duration("1001us").value() == Millis(2));
}

TEST_CASE("parse_duration refuses text without a number and a known unit") {
  CHECK(duration_error("") ==
        "invalid duration \"\": empty (write e.g. \"500ms\", \"30s\", \"2m\")");
  CHECK(duration_error("30") ==
        "invalid duration \"30\": missing unit (write e.g. \"500ms\", \"30s\", \"2m\")");
  CHECK(duration_error("ms") ==
        "invalid duration \"ms\": expected a number (write e.g. \"500ms\", \"30s\", \"2m\")");
  CHECK(duration_error("5x") ==
        "invalid duration \"5x\": unknown unit \"x\" (write e.g. \"500ms\", \"30s\", \"2m\")");
  CHECK(duration_error("1.2.3s") ==
        "invalid duration \"1.2.3s\": malformed number (write e.g. \"500ms\", \"30s\", \"2m\")");
}

TEST_CASE("parse_duration names the text and suggests an example in every error") {
  for (std::string_view text : {"", "30", "ms", "5x", "1.2.3s", "1m30", "-1s", " 1s"}) {
    CAPTURE(text);
    std::string message = duration_error(text);
    CHECK(message.find(std::string("\"") + std::string(text) + "\"") != std::string::npos);
    CHECK(message.find("(write e.g. \"500ms\", \"30s\", \"2m\")") != std::string::npos);
  }
}

TEST_CASE("format_duration writes milliseconds below one second") {
  CHECK(format_duration(Millis(0)) == "0ms");
  CHECK(format_duration(Millis(850)) == "850ms");
  CHECK(format_duration(Millis(999)) == "999ms");
}

TEST_CASE("format_duration writes seconds, minutes and hours compactly") {
  CHECK(format_duration(Millis(1'000)) == "1s");
  CHECK(format_duration(Millis(2'500)) == "2.5s");
  CHECK(format_duration(Millis(30'000)) == "30s");
  CHECK(format_duration(Millis(192'000)) == "3m12s");
  CHECK(format_duration(Millis(7'500'000)) == "2h5m");
}

TEST_CASE("format_duration output parses back to the same duration") {
  for (int64_t ms : {0, 850, 1'000, 2'500, 192'000, 7'500'000}) {
    CAPTURE(ms);
    CHECK(parse_duration(format_duration(Millis(ms))).value() == Millis(ms));
  }
}

TEST_CASE("parse_duration reads decimals exactly, without a stray millisecond") {
  // 16.1 * 1e6 is 16100000.000000002 in binary: rounding that up gave 16101ms.
  CHECK(baton::parse_duration("16.1s").value() == baton::Millis(16'100));
  CHECK(baton::parse_duration("8.3s").value() == baton::Millis(8'300));
  CHECK(baton::parse_duration("1.1m").value() == baton::Millis(66'000));
  CHECK(baton::parse_duration("5s.55s5s5s.5s").value() == baton::Millis(16'050));
  for (int tenths = 1; tenths < 600; ++tenths) {
    std::string text = fmt::format("{}.{}s", tenths / 10, tenths % 10);
    CAPTURE(text);
    CHECK(baton::parse_duration(text).value() == baton::Millis(tenths * 100));
  }
}

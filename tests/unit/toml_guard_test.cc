// Tests the checks made before toml++ parses a config (toml_guard.h), through
// the calls that make them: the nesting and size limits of parse_config and
// load_config, and read_control_path's plain-line fallback.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.h"
#include "config_fixture.h"

using namespace baton;
using namespace config_fixture;

namespace {

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

/// The nesting error at "LINE:COLUMN" of kPath.
std::string too_deep(std::string_view where) {
  return std::string(kPath) + ":" + std::string(where) +
         ": nested more than 64 levels deep (each table, array, inline table and dotted-key "
         "part is a level)";
}

}  // namespace

TEST_CASE("a 50,000-level table header is refused before parsing, at its 65th level") {
  CHECK(config_error("[" + repeat("t.", 49'999) + "t]\n") == too_deep("1:130"));
  CHECK(config_error("[[" + repeat("t.", 49'999) + "t]]\n") == too_deep("1:131"));
}

TEST_CASE("50,000 nested arrays are refused before parsing") {
  CHECK(config_error("a = " + repeat("[", 50'000) + repeat("]", 50'000) + "\n") ==
        too_deep("1:68"));
}

TEST_CASE("50,000 nested inline tables are refused before parsing") {
  // Each brace and each key in it is a level: the 32nd table's key is level 65.
  CHECK(config_error("a = " + repeat("{b = ", 50'000) + "1" + repeat("}", 50'000) + "\n") ==
        too_deep("1:161"));
}

TEST_CASE("a long dotted key is refused, counted from its table or inline table") {
  CHECK(config_error(repeat("t.", 49'999) + "t = 1\n") == too_deep("1:129"));
  CHECK(config_error("[a.b]\n" + repeat("t.", 100) + "t = 1\n") == too_deep("2:125"));
  CHECK(config_error("x = {" + repeat("t.", 100) + "t = 1}\n") == too_deep("1:130"));
  CHECK(config_error("x = [{a = 1}, {" + repeat("'t'.", 100) + "t = 1}]\n") == too_deep("1:260"));
}

TEST_CASE("nesting of exactly 64 levels is parsed") {
  // Each config reaches toml++, and the problem is what it then finds.
  CHECK(config_error(with_app("", "[" + repeat("t.", 63) + "t]\n")) ==
        "/etc/baton/test.toml:5:2: unknown key 't' in the top level");
  CHECK(config_error(with_app("", "[a.b]\n" + repeat("t.", 61) + "t = 1\n")) ==
        "/etc/baton/test.toml:5:2: unknown key 'a' in the top level");
  CHECK(
      config_error("command = " + repeat("[", 63) + "\"app\"" + repeat("]", 63) + "\n" + kSocket) ==
      "/etc/baton/test.toml:1:12: 'command' must be an array of strings");
  CHECK(config_error(
            with_app("environment = " + repeat("{b = ", 31) + "1" + repeat("}", 31) + "\n")) ==
        "/etc/baton/test.toml:2:20: environment 'b' must be a string");
}

TEST_CASE("dots and brackets in values, strings and comments are not nesting") {
  // At 63 levels any of them counted would go past the limit; the last line does.
  std::string lines = "[" + repeat("t.", 62) +
                      "t]\n"
                      "x = 1.5\n"
                      "y = 1979-05-27T07:32:00.999Z\n"
                      "z = \"[{.\\\"[{.\"  # [{.\n"
                      "w = '[{.\\'\n"
                      "v = \"\"\"\n[{.\\\"\"\"\n\"\"\"\"\n"
                      "u = '''\n[{.'''''\n";
  CHECK(config_error(lines) == "/etc/baton/test.toml:1:2: unknown key 't' in the top level\n" +
                                   std::string(kPath) + ": " + kMissingCommand + "\n" + kPath +
                                   ": " + kNoSockets);
  CHECK(config_error(lines + "r.q = 1\n") == too_deep("11:3"));
}

TEST_CASE("a config over 1 MiB is refused, without reading more than the limit") {
  std::string exact = with_app("");
  exact += "#" + std::string(1024 * 1024 - exact.size() - 2, 'x') + "\n";
  REQUIRE(exact.size() == 1024 * 1024);
  CHECK(parse_ok(exact).sockets.size() == 1);
  CHECK(config_error(exact + "\n") ==
        "config /etc/baton/test.toml is 1048577 bytes; the limit is 1 MiB");

  TempDir dir;
  CHECK(load_config(dir.write("exact.toml", exact)).ok());
  std::string big = dir.write("big.toml", exact + exact);
  CHECK(load_config(big).error().message ==
        "config " + big + " is 2097152 bytes; the limit is 1 MiB");
  // An endless device: only limit + 1 bytes are read.
  CHECK(load_config("/dev/zero").error().message ==
        "config /dev/zero is longer than the limit of 1 MiB");
}

TEST_CASE("read_control_path reads the plain lines of a config that does not parse") {
  TempDir dir;
  std::string broken = dir.write("broken.toml",
                                 "# service\n"
                                 "name = \"web\"  # comment\n"
                                 "control = 'run/web.sock'\n"
                                 "command = [\"./app\"\n"
                                 "[[socket]]\n"
                                 "control = \"other.sock\"\n");
  REQUIRE_FALSE(load_config(broken).ok());
  CHECK(read_control_path(broken).value() == (dir.path / "run/web.sock").string());

  std::string name_only = dir.write("n.toml", "name = 'api'\n[t.t\n");
  CHECK(read_control_path(name_only).value() == default_control_path("api"));

  std::string deep =
      dir.write("deep.toml", "control = \"/run/x.sock\"\n[" + repeat("t.", 50'000) + "t]\n");
  CHECK(read_control_path(deep).value() == "/run/x.sock");

  std::string big = dir.write(
      "big.toml", "control = \"/run/big.sock\"\n# " + std::string(2 * 1024 * 1024, 'x') + "\n");
  CHECK(read_control_path(big).value() == "/run/big.sock");
}

TEST_CASE("read_control_path returns the parse error when no plain line names the service") {
  TempDir dir;
  for (std::string text : {"command = [\n", "[table]\nname = \"web\"\nbroken =\n",
                           "x = \"\"\"\ncontrol = \"/run/inside-a-string.sock\"\n\"\"\"\n=\n",
                           "name = \"we\\\"b\"\ncontrol = \"/a\" junk\n=\n"}) {
    CAPTURE(text);
    std::string file = dir.write("bad.toml", text);
    auto path = read_control_path(file);
    REQUIRE_FALSE(path.ok());
    CHECK(path.error().message == load_config(file).error().message);
    CHECK(path.error().message.starts_with(file + ":"));
  }
}

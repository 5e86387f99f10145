// Fixtures shared by the config unit tests (config_test.cc,
// toml_guard_test.cc): a config path, a minimal socket table, parse helpers
// that REQUIRE the outcome, and a temporary directory.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "config.h"

namespace config_fixture {

using namespace baton;

inline constexpr const char kPath[] = "/etc/baton/test.toml";
inline constexpr const char kSocket[] = "[[socket]]\nname = \"a\"\nlisten = \"unix:@a\"\n";
inline constexpr const char kNoSockets[] =
    "no sockets configured (add a [[socket]] table or --listen NAME=URL)";
inline constexpr const char kMissingCommand[] =
    "missing 'command' (the app to run, e.g. [\"./app\", \"--flag\"])";

/// `command = ["app"]`, `top`, socket "a" (lines 2-4 if `top` is empty), `tail`.
inline std::string with_app(std::string_view top, std::string_view tail = "") {
  return "command = [\"app\"]\n" + std::string(top) + kSocket + std::string(tail);
}

inline Config parse_ok(std::string_view text) {
  auto config = parse_config(text, kPath);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  return config.value();
}

inline std::string config_error(std::string_view text) {
  auto config = parse_config(text, kPath);
  REQUIRE_FALSE(config.ok());
  return config.error().message;
}

/// A temporary directory, removed with everything in it when the test ends.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/baton-config-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, std::string_view text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
  /// Writes a file with permission bits `mode`.
  std::string write(const std::string& name, std::string_view text, mode_t mode) const {
    std::string file = write(name, text);
    REQUIRE(chmod(file.c_str(), mode) == 0);
    return file;
  }
};

}  // namespace config_fixture

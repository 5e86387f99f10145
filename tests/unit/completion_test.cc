// Tests the completion table and the bash script made from it: the table
// lists exactly the options the command-line parser accepts for each
// command, every option `baton --help` shows is in the script, and an
// unsupported shell is refused by name.
#include <doctest/doctest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cli.h"
#include "completion.h"

using baton::completion_commands;
using baton::completion_options;
using baton::CompletionValue;

namespace {

/// Every -x and --long-option that kUsage shows (not "--ready-*", a family).
std::set<std::string> usage_options() {
  std::set<std::string> options;
  std::string usage = baton::kUsage;
  std::regex option(R"((?:^|[\s\[|])(--?[a-z](?:[a-z-]*[a-z])?)(?=[^a-z*-]|$))");
  for (auto it = std::sregex_iterator(usage.begin(), usage.end(), option);
       it != std::sregex_iterator(); ++it) {
    options.insert((*it)[1]);
  }
  return options;
}

/// The table's entry for `typed` ("-c" is "--config"), or null.
const baton::CompletionOption* find_option(const std::string& typed) {
  for (const auto& o : completion_options()) {
    if (o.name == typed || o.short_name == typed) return &o;
  }
  return nullptr;
}

/// The long name of `typed`, or "" when the table does not have it.
std::string long_name(const std::string& typed) {
  const baton::CompletionOption* o = find_option(typed);
  return o ? std::string(o->name) : "";
}

bool table_lists(std::string_view command, const std::string& option) {
  if (option.empty()) return false;
  for (const auto& c : completion_commands()) {
    if (c.name != command) continue;
    std::string words = " " + std::string(c.options) + " ";
    return words.find(" " + option + " ") != std::string::npos;
  }
  return false;
}

/// Whether the parser takes `option` after `command` (any other complaint,
/// about a missing value or a combination, means it took the option).
bool parser_accepts(std::string_view command, const std::string& option) {
  const baton::CompletionOption* spec = find_option(option);
  std::vector<std::string> args{std::string(command), option};
  if (spec && spec->value != CompletionValue::kNone) {
    args.push_back(option == "--canary" ? "10%" : "1");
  }
  auto cl = baton::parse_command_line(args);
  return cl.ok() || cl.error().message.find("does not take") == std::string::npos;
}

}  // namespace

TEST_CASE("kUsage shows the options the completion table has, and no others") {
  std::set<std::string> shown = usage_options();
  for (std::string o : {"-c", "--config", "--control", "--listen", "--wait", "--json", "-f", "-n",
                        "--ready-http", "--address", "--help", "--version"}) {
    CHECK_MESSAGE(shown.count(o) == 1, o);  // the extraction itself works
  }
  for (const std::string& typed : shown) {
    if (typed == "-h" || typed == "--help" || typed == "--version") continue;
    CHECK_MESSAGE(!long_name(typed).empty(), typed << " is in kUsage, not in the table");
  }
  for (const auto& o : completion_options()) {
    CHECK_MESSAGE(shown.count(std::string(o.name)) == 1, o.name << " is not in kUsage");
  }
}

TEST_CASE("each command's options in the table are the ones the parser accepts") {
  for (const auto& c : completion_commands()) {
    for (const std::string& typed : usage_options()) {
      if (typed == "-h" || typed == "--help" || typed == "--version") continue;
      INFO("baton " << c.name << " " << typed);
      CHECK(table_lists(c.name, long_name(typed)) == parser_accepts(c.name, typed));
    }
  }
}

TEST_CASE("the table's commands are those of kUsage's synopsis") {
  std::string usage = baton::kUsage;
  std::set<std::string> synopsis;
  std::regex line(R"(\n  baton ([a-z]+))");
  for (auto it = std::sregex_iterator(usage.begin(), usage.end(), line);
       it != std::sregex_iterator(); ++it) {
    synopsis.insert((*it)[1]);
  }
  std::set<std::string> table;
  for (const auto& c : completion_commands()) table.insert(std::string(c.name));
  CHECK(table == synopsis);
}

TEST_CASE("the bash script names every command and option, and registers _baton") {
  std::string script = baton::completion_script("bash");
  CHECK(script.find("complete -F _baton baton\n") != std::string::npos);
  CHECK(script.find("@") == std::string::npos);  // every placeholder filled in
  for (const auto& c : completion_commands()) {
    CHECK_MESSAGE(script.find(" " + std::string(c.name)) != std::string::npos, c.name);
  }
  for (const std::string& o : usage_options()) {
    CHECK_MESSAGE(script.find(o) != std::string::npos, o);
  }
  CHECK(script.find("    -c|--config) _baton_files") != std::string::npos);
  CHECK(script.find("    --control) _baton_sockets") != std::string::npos);
  CHECK(script.find("    reload) opts=\"-c --config --control --wait --canary --logs\" ;;") !=
        std::string::npos);
}

TEST_CASE("completion takes bash and refuses another shell by name") {
  auto bash = baton::parse_command_line({"completion", "bash"});
  REQUIRE(bash.ok());
  CHECK(bash->shell == "bash");
  auto zsh = baton::parse_command_line({"completion", "zsh"});
  REQUIRE_FALSE(zsh.ok());
  CHECK(zsh.error().message ==
        "no completion for \"zsh\": only bash is supported (see baton --help)");
  auto none = baton::parse_command_line({"completion"});
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message == "completion needs a shell: bash (see baton --help)");
  CHECK(baton::completion_script("zsh") == "");
}

TEST_CASE("run -c FILE refuses --shim, as the usage line shows") {
  auto cl = baton::parse_command_line({"run", "-c", "app.toml", "--shim"});
  REQUIRE_FALSE(cl.ok());
  CHECK(cl.error().message ==
        "with -c FILE, set shim = true in the config instead of --shim (see baton --help)");
  CHECK(std::string(baton::kUsage).find("baton run -c FILE\n") != std::string::npos);
}

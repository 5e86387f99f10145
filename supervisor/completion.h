// `baton completion SHELL`: a completion script for the shell, generated from
// one table of the commands and the options each takes.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace baton {

/// What the word after an option is completed with.
enum class CompletionValue {
  kNone,    ///< a switch: no value
  kFile,    ///< file names (-c FILE)
  kSocket,  ///< directories and unix sockets (--control PATH)
  kChoice,  ///< one of `choices`
  kFree,    ///< a value of the user's: nothing is offered
};

/// One option as the completion offers it.
struct CompletionOption {
  std::string_view name;        ///< "--config"
  std::string_view short_name;  ///< "-c", or empty
  CompletionValue value;
  std::string_view choices;  ///< kChoice: the words, space-separated
};

/// One command and the long names of the options it takes, space-separated.
struct CompletionCommand {
  std::string_view name;
  std::string_view options;
};

/// Every option of every command (the table the script is generated from).
std::span<const CompletionOption> completion_options();

/// The commands, in the order `baton --help` lists them.
std::span<const CompletionCommand> completion_commands();

/// The script for `shell`; only "bash" has one (the command line refuses
/// any other before this is called), so another shell gets "".
std::string completion_script(std::string_view shell);

}  // namespace baton

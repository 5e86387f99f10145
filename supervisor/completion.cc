// The bash completion script, generated from one table of commands and
// options (tests/unit/completion_test.cc holds the table to what the
// command-line parser accepts, so the two cannot drift apart).
#include "completion.h"

#include <fmt/format.h>

namespace baton {

namespace {

using enum CompletionValue;

constexpr CompletionOption kCompletionOptions[] = {
    {"--config", "-c", kFile, ""},
    {"--control", "", kSocket, ""},
    {"--listen", "", kFree, ""},
    {"--shim", "", kNone, ""},
    {"--json", "", kNone, ""},
    {"--ready", "", kNone, ""},
    {"--wait", "", kNone, ""},
    {"--canary", "", kFree, ""},
    {"--logs", "", kNone, ""},
    {"--follow", "-f", kNone, ""},
    {"--lines", "-n", kFree, ""},
    {"--generation", "", kFree, ""},
    {"--reloads", "", kFree, ""},
    {"--duration", "", kFree, ""},
    {"--connections", "", kFree, ""},
    {"--rate", "", kFree, ""},
    {"--path", "", kFree, ""},
    {"--keepalive", "", kNone, ""},
    {"--socket", "", kFree, ""},
    {"--address", "", kFree, ""},
    {"--ready-http", "", kFree, ""},
    {"--ready-tcp", "", kNone, ""},
    {"--ready-exec", "", kFree, ""},
    {"--ready-notify", "", kNone, ""},
    {"--ready-socket", "", kFree, ""},
    {"--ready-interval", "", kFree, ""},
    {"--probe-timeout", "", kFree, ""},
    {"--smoke", "", kFree, ""},
    {"--pre-reload", "", kFree, ""},
    {"--after-drained", "", kFree, ""},
    {"--listeners", "", kChoice, "per-generation shared"},
};

constexpr std::string_view kClientOptions = "--config --control";
constexpr CompletionCommand kCompletionCommands[] = {
    {"run",
     "--config --control --listen --shim --ready-http --ready-tcp --ready-exec --ready-notify "
     "--ready-socket --ready-interval --probe-timeout --smoke --pre-reload --after-drained "
     "--listeners"},
    {"reload", "--config --control --wait --canary --logs"},
    {"promote", "--config --control --wait"},
    {"rollback", kClientOptions},
    {"status", "--config --control --json --ready"},
    {"stop", kClientOptions},
    {"logs", "--config --control --follow --lines --generation"},
    {"metrics", kClientOptions},
    {"verify",
     "--config --control --reloads --duration --connections --rate --path --keepalive --socket "
     "--address"},
    {"check", "--config"},
    {"completion", ""},
    {"help", ""},
};

const CompletionOption* find_option(std::string_view name) {
  for (const CompletionOption& o : kCompletionOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

/// The words offered for `command`'s options: each short name before its long one.
std::string option_words(const CompletionCommand& command) {
  std::string words;
  std::string_view rest = command.options;
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    const CompletionOption* o = find_option(rest.substr(0, space));
    rest = space == std::string_view::npos ? "" : rest.substr(space + 1);
    if (!o) continue;  // the unit test keeps every name in kCompletionOptions
    if (!o->short_name.empty()) words += fmt::format("{} ", o->short_name);
    words += fmt::format("{} ", o->name);
  }
  if (!words.empty()) words.pop_back();
  return words;
}

/// "-c|--config" for every option whose value is `kind`.
std::string option_patterns(CompletionValue kind) {
  std::string patterns;
  for (const CompletionOption& o : kCompletionOptions) {
    if (o.value != kind) continue;
    if (!patterns.empty()) patterns += '|';
    if (!o.short_name.empty()) patterns += fmt::format("{}|", o.short_name);
    patterns += o.name;
  }
  return patterns;
}

/// The `case $prev` arms: what the word after an option that takes a value is.
std::string value_arms() {
  std::string arms = fmt::format(
      "    {}) _baton_files \"$cur\"; return 0 ;;\n"
      "    {}) _baton_sockets \"$cur\"; return 0 ;;\n",
      option_patterns(kFile), option_patterns(kSocket));
  for (const CompletionOption& o : kCompletionOptions) {
    if (o.value != kChoice) continue;
    arms += fmt::format("    {}) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return 0 ;;\n",
                        o.name, o.choices);
  }
  arms += fmt::format("    {}) return 0 ;;  # a value of the user's own\n", option_patterns(kFree));
  return arms;
}

/// The `case $cmd` arms: the options each command takes.
std::string command_arms() {
  std::string arms;
  for (const CompletionCommand& c : kCompletionCommands) {
    if (c.name == "completion") {
      arms +=
          "    completion) ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W \"bash\" -- \"$cur\"))"
          "; return 0 ;;\n";
    } else if (!c.options.empty()) {
      arms += fmt::format("    {}) opts=\"{}\" ;;\n", c.name, option_words(c));
    }
  }
  arms += "    *) return 0 ;;\n";
  return arms;
}

std::string command_words() {
  std::string words;
  for (const CompletionCommand& c : kCompletionCommands) {
    if (!words.empty()) words += ' ';
    words += c.name;
  }
  return words;
}

/// Replaces the one `placeholder` in `text`.
void replace(std::string& text, std::string_view placeholder, const std::string& with) {
  size_t at = text.find(placeholder);
  if (at != std::string::npos) text.replace(at, placeholder.size(), with);
}

// The script runs in the user's interactive shell: only bash builtins, no
// bash-completion helpers (it works without that package), and every name
// it defines starts with _baton.
constexpr std::string_view kBashScript =
    R"(# bash completion for baton(1), printed by `baton completion bash`.
# Source it, or install it as /usr/share/bash-completion/completions/baton.

# _baton_files PREFIX: file and directory names that start with PREFIX.
_baton_files() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  COMPREPLY=($(compgen -f -- "$1"))
}

# _baton_sockets PREFIX: directories and unix sockets that start with PREFIX
# (a control socket, or the way to one).
_baton_sockets() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n' f
  COMPREPLY=()
  for f in $(compgen -f -- "$1"); do
    [[ -d $f || -S $f ]] && COMPREPLY+=("$f")
  done
}

_baton() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd opts i
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  # bash splits --option=VALUE at the '=' (COMP_WORDBREAKS).
  if [[ $cur == = ]]; then
    cur=
  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur"))
    fi
    return 0
  fi
  cmd=${COMP_WORDS[1]}
  # run ... -- COMMAND ARGS: a command name, then file names.
  if [[ $cmd == run ]]; then
    for ((i = 2; i < COMP_CWORD; i++)); do
      if [[ ${COMP_WORDS[i]} == -- ]]; then
        if ((i + 1 == COMP_CWORD)); then
          COMPREPLY=($(compgen -c -- "$cur"))
        else
          _baton_files "$cur"
        fi
        return 0
      fi
    done
  fi
  case $prev in
@OPTION_VALUES@  esac
  case $cmd in
@COMMAND_OPTIONS@  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}

complete -F _baton baton
)";

}  // namespace

std::span<const CompletionOption> completion_options() {
  return kCompletionOptions;
}

std::span<const CompletionCommand> completion_commands() {
  return kCompletionCommands;
}

std::string completion_script(std::string_view shell) {
  if (shell != "bash") return "";
  std::string script(kBashScript);
  replace(script, "@COMMANDS@", command_words());
  replace(script, "@OPTION_VALUES@", value_arms());
  replace(script, "@COMMAND_OPTIONS@", command_arms());
  return script;
}

}  // namespace baton

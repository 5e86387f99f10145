// baton's side of the LD_PRELOAD shim (shim/): finding the library, and
// telling up front whether a program can be reached by it at all.
#pragma once

#include <string>

#include "result.h"

namespace baton {

/// The path of libbaton_shim.so: $BATON_SHIM_LIBRARY if set, else next to
/// the baton binary in a build tree (../shim/) or an install tree
/// (../LIBDIR/baton/), else the configured install path.
Result<std::string> find_shim_library();

/// Refuses programs LD_PRELOAD cannot reach: statically linked binaries, Go
/// programs (they make raw system calls), setuid/setgid binaries (the loader
/// ignores LD_PRELOAD for them). `command` is looked up in PATH when it has
/// no '/'. A #! script is judged by the program that runs it: the
/// interpreter its #! line names (as the kernel splits the line: the
/// interpreter and one argument), the program `env` runs when that is env
/// (its argument, or with -S its first word past options and assignments,
/// looked up in PATH), and so on through up to 4 scripts in a row. Errors
/// say which and why, naming the script and the interpreter:
/// "shim: /usr/bin/x (the #! interpreter of /srv/app, through /usr/bin/env)
/// is statically linked: ...".
Status check_shim_target(const std::string& command);

/// For any command (shim or not): a #! script at `path` whose interpreter
/// (as the kernel opens it: no PATH search) is not an executable file
/// cannot be executed; the error says so. Only the first #! line is read:
/// what `env` looks up depends on the app's PATH, known only when it runs.
Status check_script_interpreter(const std::string& path);

/// Finds `command` the way execvp would; empty when not found. `path` is
/// the PATH to search (default: baton's own).
std::string find_executable(const std::string& command);
std::string find_executable(const std::string& command, const std::string& path);

}  // namespace baton

// `baton completion SHELL`: a completion script for the shell.
#pragma once

#include <string>
#include <string_view>

namespace baton {

/// The script for `shell` ("bash").
std::string completion_script(std::string_view shell);

}  // namespace baton

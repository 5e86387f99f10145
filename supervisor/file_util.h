// Small file helpers shared by the config reader and the shim checks.
#pragma once

#include <string>

#include "result.h"

namespace baton {

/// The whole content of `path`. The error names `what` and the path:
/// "cannot read config /etc/baton/x.toml: No such file or directory".
Result<std::string> read_whole_file(const std::string& path, const std::string& what);

}  // namespace baton

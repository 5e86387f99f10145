// The control socket's client side (`baton status`, `reload`, `stop`: one
// blocking request, then its events and final reply), and what both sides
// check before they use a control socket path: that it fits a unix socket
// address and that its directory is one only its owner can change.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "result.h"
#include "unique_fd.h"
#include "unix_address.h"

namespace baton {

/// The unix socket address of `path`; an error if it is too long.
Result<UnixAddress> control_address(const std::string& path);

/// The directory `path` is in ("." for a bare name).
std::string directory_of(const std::string& path);

/// Whether the control socket directory `dir` can be trusted (see the
/// definition for the rule). Untrusted: an Error with EPERM or ENOTDIR; a
/// missing directory: ENOENT, for the caller to decide.
Status check_control_directory(const std::string& dir);

/// Connects a blocking stream socket to `path`; errors keep their errno.
Result<UniqueFd> connect_unix(const std::string& path);

/// Sends one request to the baton listening on `path` and calls `on_event`
/// for every JSON line it answers with before the final reply, which it
/// returns. Refuses (EPERM, before connecting) when `path` is in an
/// untrusted directory.
Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       const std::function<void(const nlohmann::json&)>& on_event);

}  // namespace baton

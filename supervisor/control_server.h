// ControlServer: the unix stream socket that `baton status`, `baton stop`
// (and later `baton reload`) talk to. Requests and replies are JSON, one
// object per line: a request, then any number of progress events, then one
// final reply carrying "ok".
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "result.h"

namespace baton {

/// The server side of one client request. It stays valid after the client
/// disconnects; sending to a gone client does nothing.
class ControlReply {
 public:
  virtual ~ControlReply() = default;
  /// Sends a progress event ({"event": ...}); the request stays open.
  virtual void event(const nlohmann::json& event) = 0;
  /// Sends the final reply (it must contain "ok") and closes the connection.
  virtual void finish(const nlohmann::json& reply) = 0;
};

class ControlConnection;

class ControlServer {
 public:
  using Handler =
      std::function<void(const nlohmann::json& request, std::shared_ptr<ControlReply> reply)>;

  /// Listens on `path` with owner-only permissions, creating its directory
  /// if missing. Refuses when another live process answers on `path`; a
  /// stale socket file is replaced.
  static Result<std::unique_ptr<ControlServer>> open(uv_loop_t* loop, const std::string& path,
                                                     Handler handler);
  ~ControlServer();

  /// Stops accepting and removes the socket file. Open requests can still
  /// be answered.
  void close();
  /// Closes every client connection still open (after final replies are
  /// queued), so none keeps the loop alive.
  void close_connections();

 private:
  ControlServer() = default;
  static void on_connection(uv_stream_t* server, int status) noexcept;

  uv_loop_t* loop_ = nullptr;
  uv_pipe_t pipe_{};
  bool listening_ = false;
  std::string path_;
  Handler handler_;
  std::vector<std::weak_ptr<ControlConnection>> connections_;
};

/// Sends one request to the baton listening on `path` and calls `on_line`
/// for every JSON line it answers with. Returns the final reply.
Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       const std::function<void(const nlohmann::json&)>& on_event);

}  // namespace baton

// ReloadReply: a reload client on the control socket. It turns the
// lifecycle's typed reload events into the wire format `baton reload` reads:
// {"event":"queued"|"progress"|"draining",...} lines, then the final reply.
#pragma once

#include <memory>

#include "control_server.h"
#include "supervisor.h"

namespace baton {

class ReloadReply final : public ReloadClient {
 public:
  explicit ReloadReply(std::shared_ptr<ControlReply> reply) : reply_(std::move(reply)) {}
  void queued(const std::string& message) override;
  void progress(const std::string& message) override;
  void draining(const ReloadRecord& record) override;
  void finished(const ReloadOutcome& outcome) override;

 private:
  std::shared_ptr<ControlReply> reply_;
};

}  // namespace baton

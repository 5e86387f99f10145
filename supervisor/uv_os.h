// UvOs: the Os seam on libuv and /proc, as `baton run` uses it.
#pragma once

#include <uv.h>

#include <memory>

#include "escaped_holders.h"
#include "os.h"

namespace baton {

class UvOs final : public Os {
 public:
  explicit UvOs(uv_loop_t* loop) : loop_(loop) {}

  Clock::time_point now() const override { return Clock::now(); }
  Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, int generation,
                                         Process::Events events) override;
  pid_t process_group_of(pid_t pid) const override;
  pid_t parent_of(pid_t pid) const override;
  std::string command_name(pid_t pid) const override;
  std::unique_ptr<Timer> timer(std::function<void()> fired) override;
  void watch_escaped(std::function<EscapeScope()> scope, std::function<void()> on_empty) override;
  void sweep_escaped(const std::string& ended, Clock::time_point deadline) override;
  bool escaped_empty() const override { return !escaped_ || escaped_->empty(); }
  void close() override;
  std::unique_ptr<Pending> probe(const ProbeSpec& spec,
                                 std::function<void(ProbeResult)> done) override;
  std::unique_ptr<Pending> run(const CommandSpec& spec,
                               std::function<void(const std::string&)> line,
                               std::function<void(CommandResult)> done) override;
  Status switch_to(const std::vector<SharedSocket>& sockets) override;
  Status share(const std::vector<SharedSocket>& sockets, uint32_t share) override;
  std::optional<int> queued(const std::vector<SharedSocket>& sockets) override;

 private:
  uv_loop_t* loop_;
  std::unique_ptr<EscapedHolders> escaped_;
};

}  // namespace baton

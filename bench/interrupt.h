// What the bench programs (reload_bench, soak) do on SIGINT or SIGTERM: the
// first one is forwarded to their long-lived children as SIGTERM (baton
// drains its app; an app alone runs in a session of its own and would not
// get a terminal's Ctrl-C) and makes the bench unwind at its next step,
// which stops every process it started and removes its temporary
// directories. A second one kills the bench at once. Also: the error a
// failed step throws.
#pragma once

#include <stdexcept>

#include "support/process.h"
#include "support/wait.h"

namespace bench {

using support::Clock;
using support::Millis;

/// A step of the benchmark failed; the message names what.
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// True once the bench got SIGINT or SIGTERM.
bool interrupted();
/// Throws BenchError("interrupted by a signal") if interrupted().
void throw_if_interrupted();
/// Sleeps until `t`; throws as soon as the bench is interrupted.
void sleep_until(Clock::time_point t);

/// A long-lived child of the bench, which the bench's first SIGINT or
/// SIGTERM reaches as SIGTERM (through a pidfd: once the child is reaped,
/// its pid may be reused, and the new holder is never signalled).
class ForwardedChild : public support::Child {
 public:
  explicit ForwardedChild(support::Child child);
  ~ForwardedChild();
  ForwardedChild(const ForwardedChild&) = delete;
  ForwardedChild& operator=(const ForwardedChild&) = delete;

 private:
  int pidfd_ = -1;
};

}  // namespace bench

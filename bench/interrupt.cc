// SIGINT and SIGTERM in the bench programs (see interrupt.h).
#include "interrupt.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace bench {
namespace {

constexpr size_t kMaxForwarded = 16;
/// The pidfds of the children to forward a signal to; -1 for a free slot.
std::atomic<int> g_forwarded[kMaxForwarded];
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int sig) {
  if (g_interrupted.exchange(true)) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  for (auto& slot : g_forwarded) {
    const int pidfd = slot.load();
    if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0);
  }
}

void install_forwarding_once() {
  static const bool installed = [] {
    for (auto& slot : g_forwarded) slot.store(-1);
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

}  // namespace

bool interrupted() {
  return g_interrupted.load();
}

void throw_if_interrupted() {
  if (interrupted()) throw BenchError("interrupted by a signal");
}

void sleep_until(Clock::time_point t) {
  while (Clock::now() < t) {
    throw_if_interrupted();
    std::this_thread::sleep_for(std::min<Clock::duration>(t - Clock::now(), Millis(20)));
  }
  throw_if_interrupted();
}

ForwardedChild::ForwardedChild(support::Child child) : support::Child(std::move(child)) {
  install_forwarding_once();
  // Not reaped yet (a zombie at worst), so the pid is still this child's.
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid(), 0));
  if (pidfd_ < 0) return;
  for (auto& slot : g_forwarded) {
    int empty = -1;
    if (slot.compare_exchange_strong(empty, pidfd_)) return;
  }
}

ForwardedChild::~ForwardedChild() {
  if (pidfd_ < 0) return;
  for (auto& slot : g_forwarded) {
    int expected = pidfd_;
    if (slot.compare_exchange_strong(expected, -1)) break;
  }
  close(pidfd_);
}

}  // namespace bench

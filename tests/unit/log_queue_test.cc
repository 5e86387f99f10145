// Unit tests for the bounded log queue: a reader that stops reading never
// blocks the logger, and what was dropped is counted and said.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <spdlog/logger.h>

#include "log_queue.h"

namespace {

/// Reads `fd` to EOF.
std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("log queue: a stalled reader drops lines with a count, never blocks") {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  REQUIRE(fcntl(fds[1], F_SETPIPE_SZ, 4096) >= 4096);
  auto sink = std::make_shared<baton::QueuedStderrSink>(fds[1], 2048);
  spdlog::logger logger("test", sink);
  logger.set_pattern("%v");
  const std::string line(99, 'x');
  // 100 KB of lines against a 4 KiB pipe that nobody reads and a 2 KiB
  // queue: every call returns at once, and most lines are dropped.
  for (int i = 0; i < 1000; ++i) logger.info("{}", line);
  uint64_t dropped = sink->dropped();
  CHECK(dropped > 900);

  // Now a reader comes back: the writer empties the queue and reports the
  // drops; closing the pipe's write end after shutdown ends the read.
  std::string out;
  std::thread reader([&] { out = read_to_eof(fds[0]); });
  sink->shutdown(std::chrono::seconds(20));
  close(fds[1]);
  reader.join();
  // Every "baton: N log line(s) dropped: ..." notice, summed.
  uint64_t reported = 0;
  const std::string tail = " dropped: stderr was not keeping up\n";
  for (size_t at = 0; (at = out.find("baton: ", at)) != std::string::npos; ++at) {
    size_t end = out.find(tail, at);
    if (end == std::string::npos) break;
    reported += std::stoull(out.substr(at + 7, end - at - 7));
  }
  size_t written = 0;
  for (size_t pos = 0; (pos = out.find(line + "\n", pos)) != std::string::npos; pos += 100) {
    ++written;
  }
  CHECK(reported == dropped);
  CHECK(written + dropped == 1000);
  close(fds[0]);
}

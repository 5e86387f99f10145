// LogRing: bounded by lines and bytes, numbered, filtered, and followed.
#include "log_ring.h"

#include <doctest/doctest.h>

#include <memory>

#include <nlohmann/json.hpp>

using namespace baton;

namespace {

LogLine line(std::string text, int generation = 0) {
  LogLine l;
  l.source = generation ? "stdout" : "baton";
  l.level = "info";
  l.generation = generation;
  l.text = std::move(text);
  return l;
}

}  // namespace

TEST_CASE("log ring: line_subject reads the generation and pid a line starts with") {
  CHECK(line_subject("[gen 2 pid 915] hello") == std::pair<int, pid_t>{2, 915});
  CHECK(line_subject("generation 3: started pid 7") == std::pair<int, pid_t>{3, 0});
  CHECK(line_subject("generation 12") == std::pair<int, pid_t>{12, 0});
  CHECK(line_subject("generations 3") == std::pair<int, pid_t>{0, 0});
  CHECK(line_subject("[gen x pid 1] a") == std::pair<int, pid_t>{0, 0});
  CHECK(line_subject("reload requested") == std::pair<int, pid_t>{0, 0});
}

TEST_CASE("log ring: keeps the newest lines within its bounds, numbered in order") {
  LogRing ring(3, 1000);
  for (int i = 1; i <= 5; ++i) ring.append(line(std::to_string(i)));
  auto kept = ring.last(-1, 0);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].text == "3");
  CHECK(kept[0].seq == 3);
  CHECK(kept[2].seq == 5);
  CHECK(ring.evicted() == 2);
  CHECK(ring.last(2, 0).front().text == "4");

  LogRing small(100, 10);
  small.append(line("12345"));
  small.append(line("67890"));
  small.append(line("abc"));  // 13 bytes: the oldest goes
  CHECK(small.size() == 2);
  CHECK(small.last(-1, 0).front().text == "67890");
  small.append(line(std::string(50, 'x')));  // longer than the bound alone: kept alone
  CHECK(small.size() == 1);
}

TEST_CASE("log ring: last() filters by generation before counting") {
  LogRing ring(100, 10000);
  ring.append(line("a", 1));
  ring.append(line("b", 2));
  ring.append(line("c", 1));
  ring.append(line("d", 2));
  auto two = ring.last(5, 2);
  REQUIRE(two.size() == 2);
  CHECK(two[0].text == "b");
  CHECK(two[1].text == "d");
  CHECK(ring.last(1, 1).front().text == "c");
  CHECK(ring.last(0, 0).empty());
}

TEST_CASE("log ring: followers get each new line; one may unfollow while called") {
  LogRing ring(2, 1000);
  std::vector<std::string> first, second;
  uint64_t a = 0;
  auto name = std::make_shared<std::string>("first");
  a = ring.follow([&, name](const LogLine& l) {
    first.push_back(l.text);
    if (l.text == "2") ring.unfollow(a);
    // Its captures outlive the unfollow until it returns.
    first.back() += *name == "first" ? "" : "?";
  });
  ring.follow([&](const LogLine& l) { second.push_back(l.text); });
  for (const char* t : {"1", "2", "3"}) ring.append(line(t));
  CHECK(first == std::vector<std::string>{"1", "2"});
  CHECK(second == std::vector<std::string>{"1", "2", "3"});
}

TEST_CASE("log ring: a line as a control event") {
  LogLine l = line("hi", 4);
  l.pid = 77;
  l.seq = 9;
  nlohmann::json ev = log_event(l);
  CHECK(ev["event"] == "log");
  CHECK(ev["generation"] == 4);
  CHECK(ev["pid"] == 77);
  CHECK(ev["source"] == "stdout");
  CHECK(ev["text"] == "hi");
  CHECK(ev["seq"] == 9);
}

// Unit tests for probe: the http answer parser on its own, and real probe
// attempts on a real loop against one-connection servers on loopback (a
// thread with blocking sockets each), every wait bounded.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "http_answer.h"
#include "probe.h"
#include "test_loop.h"
#include "unique_fd.h"
#include "unix_address.h"

using baton::AnswerEnd;
using baton::Clock;
using baton::HttpAnswer;
using baton::kProbeReadLimit;
using baton::Millis;
using baton::parse_http_answer;
using baton::ProbeResult;
using baton::ProbeSpec;
using baton::SocketAddress;
using baton::SocketKind;
using baton::start_probe;
using baton::UniqueFd;
using test_loop::kLimit;
using test_loop::TestLoop;

namespace {

/// What a server sends once it has read the request.
struct Answer {
  std::string text;
  /// Half-close after it (what ends an answer without a length).
  bool then_close = true;
};

/// A server for one connection on its own thread: it records the request (up
/// to its blank line) and the client's address, sends its answer (none:
/// never answers) and waits for the client to close. Its waits are bounded.
class OneConnectionServer {
 public:
  /// On 127.0.0.1, a port of its own.
  explicit OneConnectionServer(std::optional<Answer> answer) : answer_(std::move(answer)) {
    listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener_.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t length = sizeof addr;
    REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &length) == 0);
    address_.kind = SocketKind::kTcp;
    address_.family = AF_INET;
    std::memcpy(address_.ip.data(), &addr.sin_addr, 4);
    address_.port = ntohs(addr.sin_port);
    listen_and_serve();
  }
  /// On the unix socket `path`.
  OneConnectionServer(const std::string& path, std::optional<Answer> answer)
      : answer_(std::move(answer)) {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener_.valid());
    auto addr = baton::unix_path_address(path);
    REQUIRE(addr.ok());
    REQUIRE(::bind(listener_.get(), addr->get(), addr->length) == 0);
    address_.kind = SocketKind::kUnix;
    address_.family = AF_UNIX;
    address_.path = path;
    listen_and_serve();
  }
  ~OneConnectionServer() { join(); }
  OneConnectionServer(const OneConnectionServer&) = delete;
  OneConnectionServer& operator=(const OneConnectionServer&) = delete;

  const SocketAddress& address() const { return address_; }
  /// The whole request has arrived (the thread is waiting or answering).
  bool has_request() const { return has_request_.load(); }
  /// Waits for the thread: request() and peer() are read after it.
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& request() const { return request_; }
  /// The client's IP address ("127.0.0.1"); empty for unix.
  const std::string& peer() const { return peer_; }

 private:
  void listen_and_serve() {
    REQUIRE(::listen(listener_.get(), 4) == 0);
    thread_ = std::thread([this] { serve(); });
  }

  void serve() {
    pollfd ready{listener_.get(), POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(kLimit.count())) != 1) return;
    sockaddr_storage client{};
    socklen_t length = sizeof client;
    UniqueFd conn(
        ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&client), &length, SOCK_CLOEXEC));
    if (!conn.valid()) return;
    if (client.ss_family == AF_INET) {
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&client)->sin_addr, text, sizeof text);
      peer_ = text;
    }
    timeval bound{kLimit.count() / 1000, 0};
    ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
    char buffer[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(conn.get(), buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request_.append(buffer, static_cast<size_t>(n));
    }
    has_request_ = true;
    if (answer_) {
      // The client may close before reading it all (the read limit).
      (void)::send(conn.get(), answer_->text.data(), answer_->text.size(), MSG_NOSIGNAL);
      if (answer_->then_close) ::shutdown(conn.get(), SHUT_WR);
    }
    // Until the client closes.
    while (::recv(conn.get(), buffer, sizeof buffer, 0) > 0) {
    }
  }

  std::optional<Answer> answer_;
  UniqueFd listener_;
  SocketAddress address_;
  std::thread thread_;
  std::atomic<bool> has_request_{false};
  std::string request_;
  std::string peer_;
};

/// A tcp address on 127.0.0.1 where nothing listens: the socket is bound (so
/// no one else takes the port while it lives) but never listens.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t length = sizeof addr;
    REQUIRE(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &length) == 0);
    address_.family = AF_INET;
    std::memcpy(address_.ip.data(), &addr.sin_addr, 4);
    address_.port = ntohs(addr.sin_port);
  }
  const SocketAddress& address() const { return address_; }

 private:
  UniqueFd fd_;
  SocketAddress address_;
};

/// A fresh directory, removed (with the socket file in it) at the end.
class SocketDir {
 public:
  SocketDir() {
    char name[] = "/tmp/baton-probe-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path_ = name;
  }
  ~SocketDir() {
    ::unlink(socket().c_str());
    ::rmdir(path_.c_str());
  }
  std::string socket() const { return path_ + "/app.sock"; }

 private:
  std::string path_;
};

ProbeSpec http_spec(const SocketAddress& target, std::string path = "/health") {
  ProbeSpec spec;
  spec.kind = ProbeSpec::Kind::kHttp;
  spec.target = target;
  spec.http.path = std::move(path);
  return spec;
}

ProbeSpec tcp_spec(const SocketAddress& target) {
  ProbeSpec spec;
  spec.kind = ProbeSpec::Kind::kTcp;
  spec.target = target;
  return spec;
}

/// Runs one attempt to its end: `done` must come later than start_probe's
/// return, within the limit, and exactly once.
ProbeResult probe_once(TestLoop& loop, const ProbeSpec& spec) {
  int calls = 0;
  ProbeResult result;
  auto pending = start_probe(loop.get(), spec, [&](ProbeResult r) {
    ++calls;
    result = std::move(r);
  });
  CHECK(calls == 0);
  REQUIRE(loop.run_until([&] { return calls > 0; }));
  pending.reset();
  CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
  CHECK(calls == 1);
  return result;
}

bool matches(const std::string& text, const std::string& pattern) {
  return std::regex_match(text, std::regex(pattern));
}

std::string ok_answer(const std::string& body) {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
}

}  // namespace

// ---- The parser ------------------------------------------------------------

TEST_CASE("probe answer parser: a Content-Length body is complete once all of it arrived") {
  std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
  HttpAnswer a = parse_http_answer(answer, AnswerEnd::kOpen);
  CHECK(a.state == HttpAnswer::State::kComplete);
  CHECK(a.status == 200);
  CHECK(a.body == "ok");
  // Bytes after the length are not the body.
  CHECK(parse_http_answer(answer + "extra", AnswerEnd::kOpen).body == "ok");

  std::string cut = answer.substr(0, answer.size() - 1);
  CHECK(parse_http_answer(cut, AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  HttpAnswer closed = parse_http_answer(cut, AnswerEnd::kClosed);
  CHECK(closed.state == HttpAnswer::State::kMalformed);
  CHECK(closed.problem == "malformed answer (the body ends after 1 of 2 bytes)");
  HttpAnswer capped = parse_http_answer(cut, AnswerEnd::kCapped);
  CHECK(capped.state == HttpAnswer::State::kComplete);
  CHECK(capped.body == "o");
}

TEST_CASE("probe answer parser: without a length the body runs to the end of the connection") {
  std::string answer = "HTTP/1.0 503 Service Unavailable\r\n\r\ndown";
  CHECK(parse_http_answer(answer, AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  HttpAnswer a = parse_http_answer(answer, AnswerEnd::kClosed);
  CHECK(a.state == HttpAnswer::State::kComplete);
  CHECK(a.status == 503);
  CHECK(a.body == "down");
}

TEST_CASE("probe answer parser: headers are read case-blind, bare LF line ends are taken") {
  HttpAnswer a =
      parse_http_answer("HTTP/1.1 201 Created\ncontent-LENGTH:  3 \n\nabc", AnswerEnd::kOpen);
  CHECK(a.state == HttpAnswer::State::kComplete);
  CHECK(a.status == 201);
  CHECK(a.body == "abc");
  // No reason phrase at all; 204 has no body, so no need to wait for one.
  HttpAnswer empty = parse_http_answer("HTTP/1.1 204\r\n\r\n", AnswerEnd::kOpen);
  CHECK(empty.state == HttpAnswer::State::kComplete);
  CHECK(empty.status == 204);
  CHECK(empty.body.empty());
}

TEST_CASE("probe answer parser: chunked bodies are decoded") {
  std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string chunks = "2\r\nok\r\n3;name=value\r\n!!!\r\n0\r\n\r\n";
  HttpAnswer a = parse_http_answer(head + chunks, AnswerEnd::kOpen);
  CHECK(a.state == HttpAnswer::State::kComplete);
  CHECK(a.body == "ok!!!");
  std::string cut = head + "2\r\nok\r\n3\r\n!";
  CHECK(parse_http_answer(cut, AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  CHECK(parse_http_answer(cut, AnswerEnd::kClosed).problem ==
        "malformed answer (the chunked body ends early)");
  HttpAnswer capped = parse_http_answer(cut, AnswerEnd::kCapped);
  CHECK(capped.state == HttpAnswer::State::kComplete);
  CHECK(capped.body == "ok!");
  CHECK(parse_http_answer(head + "zz\r\n", AnswerEnd::kOpen).problem ==
        "malformed answer (chunk size \"zz\")");
  CHECK(parse_http_answer(head + "1\r\nabc\r\n", AnswerEnd::kOpen).problem ==
        "malformed answer (a chunk longer than its size 1)");
}

TEST_CASE("probe answer parser: what is not http is refused as soon as it shows") {
  // Not even the start of "HTTP/": no need to wait for a line end.
  CHECK(parse_http_answer("SSH-2.0-OpenSSH", AnswerEnd::kOpen).problem ==
        "malformed answer (status line \"SSH-2.0-OpenSSH\")");
  CHECK(parse_http_answer("HTT", AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  CHECK(parse_http_answer("HTTP/1.1 2", AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  CHECK(parse_http_answer("HTTP/1.1 OK\r\n", AnswerEnd::kOpen).problem ==
        "malformed answer (status line \"HTTP/1.1 OK\")");
  CHECK(parse_http_answer("HTTP/1.1 2000 OK\r\n", AnswerEnd::kOpen).problem ==
        "malformed answer (status line \"HTTP/1.1 2000 OK\")");
  // A TLS alert, shown escaped; long lines are cut.
  CHECK(parse_http_answer(std::string("\x15\x03\x01\x00\x02", 5), AnswerEnd::kOpen).problem ==
        "malformed answer (status line \"\\x15\\x03\\x01\\x00\\x02\")");
  CHECK(
      parse_http_answer("HTTP/1.1 OK " + std::string(60, 'x') + "\r\n", AnswerEnd::kOpen).problem ==
      "malformed answer (status line \"HTTP/1.1 OK " + std::string(28, 'x') + "...\")");
  CHECK(parse_http_answer("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", AnswerEnd::kOpen)
            .problem == "malformed answer (Content-Length \"12x\")");
}

TEST_CASE("probe answer parser: answers that end too early") {
  CHECK(parse_http_answer("", AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  CHECK(parse_http_answer("", AnswerEnd::kClosed).problem == "connection closed without an answer");
  CHECK(parse_http_answer("HTTP/1.1 200 OK", AnswerEnd::kClosed).problem ==
        "malformed answer (the headers end early)");
  CHECK(parse_http_answer("HTTP/1.1 200 OK\r\nServer: x\r\n", AnswerEnd::kClosed).problem ==
        "malformed answer (the headers end early)");
  std::string endless = "HTTP/1.1 200 OK\r\n";
  while (endless.size() < kProbeReadLimit) endless += "X-Padding: 0123456789\r\n";
  CHECK(parse_http_answer(endless, AnswerEnd::kOpen).state == HttpAnswer::State::kIncomplete);
  CHECK(parse_http_answer(endless, AnswerEnd::kCapped).problem ==
        "malformed answer (headers over 64 KiB)");
}

// ---- Attempts on the loop --------------------------------------------------

TEST_CASE("probe: http 200 passes") {
  TestLoop loop;
  OneConnectionServer server(Answer{ok_answer("ok"), false});
  ProbeResult r = probe_once(loop, http_spec(server.address()));
  CHECK(r.passed);
  CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms)"), r.summary);
}

TEST_CASE("probe: http 503 fails and says 503") {
  TestLoop loop;
  OneConnectionServer server(
      Answer{"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown", false});
  ProbeResult r = probe_once(loop, http_spec(server.address()));
  CHECK_FALSE(r.passed);
  CHECK_MESSAGE(matches(r.summary, R"(http /health: 503 in \d+ms)"), r.summary);
}

TEST_CASE("probe: http body must contain the expected text when one is set") {
  TestLoop loop;
  SUBCASE("contains it") {
    OneConnectionServer server(Answer{ok_answer("{\"status\":\"ok\"}"), false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.body = "\"ok\"";
    ProbeResult r = probe_once(loop, spec);
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms)"), r.summary);
  }
  SUBCASE("lacks it") {
    OneConnectionServer server(Answer{ok_answer("{\"status\":\"starting\"}"), false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.body = "ok";
    ProbeResult r = probe_once(loop, spec);
    CHECK_FALSE(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms, body lacks "ok")"), r.summary);
  }
  SUBCASE("an answer without a length ends when the server closes") {
    OneConnectionServer server(Answer{"HTTP/1.0 200 OK\r\n\r\nall ok", true});
    ProbeSpec spec = http_spec(server.address());
    spec.http.body = "ok";
    ProbeResult r = probe_once(loop, spec);
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms)"), r.summary);
  }
}

TEST_CASE("probe: http with an exact status passes on that status only") {
  TestLoop loop;
  SUBCASE("the status asked for") {
    OneConnectionServer server(Answer{"HTTP/1.1 204 No Content\r\n\r\n", false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.status = 204;
    ProbeResult r = probe_once(loop, spec);
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 204 in \d+ms)"), r.summary);
  }
  SUBCASE("another 2xx") {
    OneConnectionServer server(Answer{ok_answer("ok"), false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.status = 204;
    ProbeResult r = probe_once(loop, spec);
    CHECK_FALSE(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms, expected 204)"), r.summary);
  }
  SUBCASE("a non-2xx status asked for") {
    OneConnectionServer server(
        Answer{"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.status = 401;
    CHECK(probe_once(loop, spec).passed);
  }
}

TEST_CASE("probe: http sends the request with the configured Host, or the address probed") {
  TestLoop loop;
  OneConnectionServer server(Answer{ok_answer("ok"), false});
  ProbeSpec spec = http_spec(server.address(), "/ready?full=1");
  std::string host = server.address().to_string();
  SUBCASE("default") {}
  SUBCASE("configured") {
    spec.http.host = "app.example.test";
    host = "app.example.test";
  }
  CHECK(probe_once(loop, spec).passed);
  server.join();
  CHECK(server.request() == fmt::format("GET /ready?full=1 HTTP/1.1\r\nHost: {}\r\n"
                                        "Connection: close\r\nUser-Agent: baton-probe\r\n\r\n",
                                        host));
}

TEST_CASE("probe: http times out against a server that never answers") {
  TestLoop loop;
  OneConnectionServer server(std::nullopt);
  ProbeSpec spec = http_spec(server.address());
  spec.timeout = Millis{100};
  auto began = Clock::now();
  ProbeResult r = probe_once(loop, spec);
  auto took = Clock::now() - began;
  CHECK_FALSE(r.passed);
  CHECK(r.summary == "http /health: timed out after 100ms");
  CHECK(took >= Millis{95});
  CHECK(took < Millis{2000});
  server.join();
  CHECK(server.has_request());
}

TEST_CASE("probe: http fails on a malformed answer or none at all") {
  TestLoop loop;
  SUBCASE("not http") {
    OneConnectionServer server(Answer{"SSH-2.0-OpenSSH_9.2\r\n", false});
    ProbeResult r = probe_once(loop, http_spec(server.address()));
    CHECK_FALSE(r.passed);
    CHECK(r.summary == "http /health: malformed answer (status line \"SSH-2.0-OpenSSH_9.2\")");
  }
  SUBCASE("closed at once") {
    OneConnectionServer server(Answer{"", true});
    ProbeResult r = probe_once(loop, http_spec(server.address()));
    CHECK_FALSE(r.passed);
    CHECK(r.summary == "http /health: connection closed without an answer");
  }
}

TEST_CASE("probe: http reads at most 64 KiB and judges what it has") {
  TestLoop loop;
  // No length, and the server keeps the connection open: only the limit ends
  // the read.
  std::string big(2 * kProbeReadLimit, 'x');
  SUBCASE("the text is within the limit") {
    OneConnectionServer server(Answer{"HTTP/1.1 200 OK\r\n\r\nok" + big, false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.body = "ok";
    ProbeResult r = probe_once(loop, spec);
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms)"), r.summary);
  }
  SUBCASE("the text is past it") {
    OneConnectionServer server(Answer{"HTTP/1.1 200 OK\r\n\r\n" + big + "ok", false});
    ProbeSpec spec = http_spec(server.address());
    spec.http.body = "ok";
    ProbeResult r = probe_once(loop, spec);
    CHECK_FALSE(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms, body lacks "ok")"), r.summary);
  }
}

TEST_CASE("probe: tcp passes once connected and closes the connection at once") {
  TestLoop loop;
  OneConnectionServer server(std::nullopt);
  ProbeResult r = probe_once(loop, tcp_spec(server.address()));
  CHECK(r.passed);
  CHECK_MESSAGE(matches(r.summary,
                        fmt::format(R"(tcp {}: connected in \d+ms)", server.address().to_string())),
                r.summary);
  // The server saw the connection end without a byte sent.
  server.join();
  CHECK(server.request().empty());
}

TEST_CASE("probe: tcp and http fail with connection refused where nothing listens") {
  TestLoop loop;
  RefusingPort port;
  ProbeResult tcp = probe_once(loop, tcp_spec(port.address()));
  CHECK_FALSE(tcp.passed);
  CHECK(tcp.summary == fmt::format("tcp {}: connection refused", port.address().to_string()));
  ProbeResult http = probe_once(loop, http_spec(port.address()));
  CHECK_FALSE(http.passed);
  CHECK(http.summary == "http /health: connection refused");
}

TEST_CASE("probe: the connection comes from the source address when one is set") {
  TestLoop loop;
  SUBCASE("tcp") {
    OneConnectionServer server(std::nullopt);
    ProbeSpec spec = tcp_spec(server.address());
    spec.source = "127.0.0.2";
    CHECK(probe_once(loop, spec).passed);
    server.join();
    CHECK(server.peer() == "127.0.0.2");
  }
  SUBCASE("http") {
    OneConnectionServer server(Answer{ok_answer("ok"), false});
    ProbeSpec spec = http_spec(server.address());
    spec.source = "127.0.0.2";
    CHECK(probe_once(loop, spec).passed);
    server.join();
    CHECK(server.peer() == "127.0.0.2");
  }
  SUBCASE("none") {
    OneConnectionServer server(std::nullopt);
    CHECK(probe_once(loop, tcp_spec(server.address())).passed);
    server.join();
    CHECK(server.peer() == "127.0.0.1");
  }
}

TEST_CASE("probe: a source address of another family fails the attempt, later") {
  TestLoop loop;
  RefusingPort port;
  ProbeSpec spec = tcp_spec(port.address());
  spec.source = "::1";
  ProbeResult r = probe_once(loop, spec);  // checks that done came after start_probe
  CHECK_FALSE(r.passed);
  CHECK(r.summary == fmt::format("tcp {}: source address ::1 is not an IPv4 address",
                                 port.address().to_string()));
}

TEST_CASE("probe: tcp over IPv6") {
  // A listening socket is enough: connect() completes in its accept queue.
  UniqueFd listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(listener.valid());
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    MESSAGE("skipped: no ::1 here");
    return;
  }
  REQUIRE(::listen(listener.get(), 4) == 0);
  socklen_t length = sizeof addr;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  SocketAddress target;
  target.family = AF_INET6;
  std::memcpy(target.ip.data(), &addr.sin6_addr, 16);
  target.port = ntohs(addr.sin6_port);

  TestLoop loop;
  ProbeSpec spec = tcp_spec(target);
  SUBCASE("no source") {}
  SUBCASE("source ::1") {
    spec.source = "::1";
  }
  ProbeResult r = probe_once(loop, spec);
  CHECK(r.passed);
  CHECK_MESSAGE(
      matches(r.summary, fmt::format(R"(tcp \[::1\]:{}: connected in \d+ms)", target.port)),
      r.summary);
  spec.source = "127.0.0.2";
  ProbeResult wrong = probe_once(loop, spec);
  CHECK_FALSE(wrong.passed);
  CHECK(wrong.summary ==
        fmt::format("tcp [::1]:{}: source address 127.0.0.2 is not an IPv6 address", target.port));
}

TEST_CASE("probe: unix socket targets") {
  TestLoop loop;
  SocketDir dir;
  SUBCASE("http") {
    OneConnectionServer server(dir.socket(), Answer{ok_answer("ok"), false});
    ProbeResult r = probe_once(loop, http_spec(server.address()));
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, R"(http /health: 200 in \d+ms)"), r.summary);
    server.join();
    // A path is no host name.
    CHECK(server.request().find("\r\nHost: localhost\r\n") != std::string::npos);
  }
  SUBCASE("tcp-style connect") {
    OneConnectionServer server(dir.socket(), std::nullopt);
    ProbeResult r = probe_once(loop, tcp_spec(server.address()));
    CHECK(r.passed);
    CHECK_MESSAGE(matches(r.summary, "unix " + dir.socket() + R"(: connected in \d+ms)"),
                  r.summary);
  }
  SUBCASE("nothing there") {
    SocketAddress missing;
    missing.kind = SocketKind::kUnix;
    missing.family = AF_UNIX;
    missing.path = dir.socket();
    ProbeResult r = probe_once(loop, tcp_spec(missing));
    CHECK_FALSE(r.passed);
    CHECK(r.summary == "unix " + dir.socket() + ": no such file or directory");
  }
  SUBCASE("abstract names are not probed") {
    SocketAddress abstract;
    abstract.kind = SocketKind::kUnix;
    abstract.family = AF_UNIX;
    abstract.path = "baton-probe-test";
    abstract.abstract = true;
    ProbeResult r = probe_once(loop, tcp_spec(abstract));
    CHECK_FALSE(r.passed);
    CHECK(r.summary == "unix @baton-probe-test: abstract unix sockets are not probed");
  }
}

TEST_CASE("probe: destroying the Pending first means no callback, and every handle closes") {
  TestLoop loop;
  int calls = 0;
  auto count = [&](ProbeResult) { ++calls; };
  SUBCASE("while waiting for the answer") {
    OneConnectionServer server(std::nullopt);
    auto pending = start_probe(loop.get(), http_spec(server.address()), count);
    REQUIRE(loop.run_until([&] { return server.has_request(); }));
    pending.reset();
    // The server sees the probe close its connection.
    server.join();
  }
  SUBCASE("before the loop ran at all") {
    OneConnectionServer server(std::nullopt);
    start_probe(loop.get(), http_spec(server.address()), count).reset();
  }
  SUBCASE("with a failure waiting to be reported") {
    RefusingPort port;
    ProbeSpec spec = tcp_spec(port.address());
    spec.source = "not an address";
    start_probe(loop.get(), spec, count).reset();
  }
  CHECK(loop.run_until([&] { return !uv_loop_alive(loop.get()); }));
  CHECK(calls == 0);
}

TEST_CASE("probe: the Pending may be destroyed from inside done") {
  TestLoop loop;
  OneConnectionServer server(Answer{ok_answer("ok"), false});
  std::unique_ptr<baton::Pending> pending;
  std::optional<ProbeResult> result;
  pending = start_probe(loop.get(), http_spec(server.address()), [&](ProbeResult r) {
    result = std::move(r);
    pending.reset();
  });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  CHECK(result->passed);
  CHECK(pending == nullptr);
}

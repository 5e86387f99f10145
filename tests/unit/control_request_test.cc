// Unit tests for control request decoding and reply encoding.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "control_request.h"

using baton::parse_control_request;

TEST_CASE("control request: the commands baton serves") {
  auto r = parse_control_request(nlohmann::json{{"command", "reload"}, {"wait", true}});
  REQUIRE(r.ok());
  CHECK(r->command == "reload");
  CHECK(r->wait);
  auto s = parse_control_request(nlohmann::json{{"command", "status"}});
  REQUIRE(s.ok());
  CHECK_FALSE(s->wait);
}

TEST_CASE("control request: promote, rollback, and a reload's canary share") {
  using nlohmann::json;
  auto r = parse_control_request(json{{"command", "reload"}, {"canary", "2.5%"}});
  REQUIRE(r.ok());
  CHECK(r->canary == 250u);
  CHECK(parse_control_request(json{{"command", "promote"}, {"wait", true}})->wait);
  CHECK(parse_control_request(json{{"command", "rollback"}})->command == "rollback");
  CHECK_FALSE(parse_control_request(json{{"command", "reload"}})->canary);
  CHECK(parse_control_request(json{{"command", "reload"}, {"canary", 10}}).error().message ==
        "\"canary\" must be a string such as \"10%\", not a number");
  CHECK(parse_control_request(json{{"command", "promote"}, {"canary", "10%"}}).error().message ==
        "\"canary\" is for the reload command only");
  CHECK(parse_control_request(json{{"command", "reload"}, {"canary", "100%"}}).error().message ==
        "a canary share is a percentage above 0 and below 100, with at most two decimals "
        "(\"10%\", \"2.5%\"), not \"100%\"");
}

TEST_CASE("control request: wrong types are errors, not exceptions") {
  using nlohmann::json;
  CHECK(parse_control_request(json{{"command", 5}}).error().message ==
        "\"command\" must be a string, not a number");
  CHECK(parse_control_request(json(nullptr)).error().message ==
        "the request must be a JSON object, not null");
  CHECK(parse_control_request(json::array({"status"})).error().message ==
        "the request must be a JSON object, not an array");
  CHECK(parse_control_request(json{{"command", "reload"}, {"wait", 1}}).error().message ==
        "\"wait\" must be true or false, not a number");
  CHECK(parse_control_request(json{{"command", "nap"}}).error().message ==
        "unknown command \"nap\" (known: status, reload, promote, rollback, stop, logs, metrics)");
  CHECK(parse_control_request(json::object()).error().message == "the request has no \"command\"");
  CHECK(parse_control_request(json{{"command", "stop"}, {"force", true}}).error().message ==
        "unknown key \"force\" in the request");
}

TEST_CASE("control reply: bytes that are not UTF-8 are replaced, never thrown on") {
  nlohmann::json reply = {{"status", std::string("caf\xe9")}};
  CHECK(baton::encode_control_message(reply) == "{\"status\":\"caf\xef\xbf\xbd\"}");
}

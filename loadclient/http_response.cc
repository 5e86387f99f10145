// Parsing an HTTP/1.x response head (http_response.h).
#include "http_response.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace load {
namespace {

bool is_token_char(unsigned char c) {
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// A short printable excerpt of protocol text for error messages.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c)
                                                       : fmt::format("\\x{:02x}", c & 0xff);
  }
  return out;
}

/// "HTTP/1.x SSS reason" -> status and the version's default keep-alive.
bool parse_status_line(std::string_view line, ResponseHead& head) {
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ') return false;
  if (line[7] != '0' && line[7] != '1') return false;
  if (line.size() > 12 && line[12] != ' ') return false;
  const std::string_view code = line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  head.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  head.keep_alive = line[7] == '1';
  return head.status >= 100;
}

void apply_connection_header(std::string_view value, ResponseHead& head) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string token = lowercase(trim(value.substr(0, comma)));
    if (token == "close") head.keep_alive = false;
    if (token == "keep-alive") head.keep_alive = true;
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
}

/// Applies one "Name: value" line; false (with `why`) if it is malformed or unsupported.
bool parse_header(std::string_view line, ResponseHead& head, std::string& why) {
  const size_t colon = line.find(':');
  const std::string_view raw_name = line.substr(0, colon);
  if (colon == std::string_view::npos || raw_name.empty() ||
      !std::all_of(raw_name.begin(), raw_name.end(),
                   [](char c) { return is_token_char(static_cast<unsigned char>(c)); })) {
    why = "malformed header line \"" + excerpt(line) + "\"";
    return false;
  }
  const std::string name = lowercase(raw_name);
  const std::string_view value = trim(line.substr(colon + 1));
  if (name == "connection") apply_connection_header(value, head);
  if (name == "transfer-encoding" && lowercase(value) != "identity") {
    why = "unsupported Transfer-Encoding \"" + excerpt(value) + "\"";
    return false;
  }
  if (name != "content-length") return true;
  uint64_t length = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
      (head.content_length && *head.content_length != length) || length > kMaxBodyBytes) {
    why = "bad Content-Length \"" + excerpt(value) + "\"";
    return false;
  }
  head.content_length = length;
  return true;
}

}  // namespace

bool parse_head(std::string_view text, ResponseHead& head, std::string& why) {
  size_t eol = text.find("\r\n");
  if (!parse_status_line(text.substr(0, eol), head)) {
    why = "bad status line \"" + excerpt(text.substr(0, eol)) + "\"";
    return false;
  }
  while (eol != std::string_view::npos) {
    text.remove_prefix(eol + 2);
    eol = text.find("\r\n");
    if (!parse_header(text.substr(0, eol), head, why)) return false;
  }
  const bool no_body = head.status < 200 || head.status == 204 || head.status == 304;
  if (no_body) head.content_length = 0;
  if (!head.content_length) head.keep_alive = false;  // the body is delimited by EOF
  return true;
}

int parse_pid(std::string_view body) {
  constexpr std::string_view kMarker = "pid ";
  const size_t at = body.find(kMarker);
  if (at == std::string_view::npos) return 0;
  const std::string_view digits = body.substr(at + kMarker.size());
  int pid = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  return ec == std::errc() && end != digits.data() ? pid : 0;
}

}  // namespace load

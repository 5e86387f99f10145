// The http/1.x answer parser of the http readiness probe: the status line,
// the headers that frame the body, and the body itself.
#include "http_answer.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace baton {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Up to 40 bytes of what a server sent, printable: other bytes as \xNN.
std::string snippet(std::string_view text) {
  constexpr size_t kShown = 40;
  std::string out;
  for (char c : text.substr(0, kShown)) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", byte);
    }
  }
  if (text.size() > kShown) out += "...";
  return out;
}

/// The line that starts at `pos` without its "\r\n" (or bare "\n"), moving
/// `pos` past it; nullopt while the line has no end yet.
std::optional<std::string_view> next_line(std::string_view data, size_t& pos) {
  size_t nl = data.find('\n', pos);
  if (nl == std::string_view::npos) return std::nullopt;
  std::string_view line = data.substr(pos, nl - pos);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos = nl + 1;
  return line;
}

HttpAnswer incomplete() {
  return HttpAnswer{};
}

HttpAnswer malformed(std::string what) {
  return HttpAnswer{
      HttpAnswer::State::kMalformed, 0, {}, fmt::format("malformed answer ({})", what)};
}

HttpAnswer complete(int status, std::string body) {
  return HttpAnswer{HttpAnswer::State::kComplete, status, std::move(body), {}};
}

/// The status of "HTTP/1.1 200 OK" (the reason phrase may be empty or
/// missing); nullopt for anything else.
std::optional<int> status_of(std::string_view line) {
  // "HTTP/" digit "." digit SP digit digit digit [SP reason]
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/") return std::nullopt;
  if (!is_digit(line[5]) || line[6] != '.' || !is_digit(line[7]) || line[8] != ' ') {
    return std::nullopt;
  }
  if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) return std::nullopt;
  if (line.size() > 12 && line[12] != ' ') return std::nullopt;
  int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 100) return std::nullopt;
  return status;
}

/// Whether `text` could still become a status line: what a server that does
/// not speak http sends first is refused without waiting for a line end.
bool could_be_status_line(std::string_view text) {
  constexpr std::string_view kPrefix = "HTTP/";
  size_t n = std::min(text.size(), kPrefix.size());
  return text.substr(0, n) == kPrefix.substr(0, n);
}

/// How the body is delimited, from the headers.
struct Framing {
  std::optional<uint64_t> length;
  bool chunked = false;
};

/// Takes Content-Length and Transfer-Encoding from one header line; other
/// headers, and lines that are not headers at all, are not the probe's
/// business. An error text for a Content-Length that is not a number.
std::optional<std::string> read_header(std::string_view line, Framing& framing) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view name = line.substr(0, colon);
  std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "transfer-encoding")) {
    // The last coding of a chunked message is "chunked".
    framing.chunked = value.size() >= 7 && iequals(value.substr(value.size() - 7), "chunked");
  } else if (iequals(name, "content-length")) {
    uint64_t length = 0;
    bool valid = !value.empty() && value.size() <= 18;
    for (char c : value) {
      valid = valid && is_digit(c);
      length = length * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!valid) return fmt::format("Content-Length \"{}\"", snippet(value));
    framing.length = length;
  }
  return std::nullopt;
}

/// The size at the start of a chunk-size line ("1a;ext=x"); nullopt if none.
std::optional<uint64_t> chunk_size_of(std::string_view line) {
  std::string_view hex = trim(line.substr(0, line.find(';')));
  if (hex.empty() || hex.size() > 15) return std::nullopt;
  uint64_t size = 0;
  for (char c : hex) {
    int digit = is_digit(c)                            ? c - '0'
                : (lower(c) >= 'a' && lower(c) <= 'f') ? lower(c) - 'a' + 10
                                                       : -1;
    if (digit < 0) return std::nullopt;
    size = size * 16 + static_cast<uint64_t>(digit);
  }
  return size;
}

/// A chunked body: complete at its last (zero-size) chunk; the trailers after
/// it are not read.
HttpAnswer chunked_body(int status, std::string_view data, AnswerEnd end) {
  std::string body;
  size_t pos = 0;
  auto cut_short = [&]() {
    if (end == AnswerEnd::kOpen) return incomplete();
    if (end == AnswerEnd::kCapped) return complete(status, std::move(body));
    return malformed("the chunked body ends early");
  };
  while (true) {
    std::optional<std::string_view> size_line = next_line(data, pos);
    if (!size_line) return cut_short();
    std::optional<uint64_t> size = chunk_size_of(*size_line);
    if (!size) return malformed(fmt::format("chunk size \"{}\"", snippet(*size_line)));
    if (*size == 0) return complete(status, std::move(body));
    if (data.size() - pos < *size) {
      if (end == AnswerEnd::kCapped) body.append(data.substr(pos));
      return cut_short();
    }
    body.append(data.substr(pos, *size));
    pos += *size;
    std::optional<std::string_view> rest = next_line(data, pos);
    if (!rest) return cut_short();
    if (!rest->empty()) return malformed(fmt::format("a chunk longer than its size {}", *size));
  }
}

/// The body after the headers, as `framing` delimits it.
HttpAnswer body_of(int status, const Framing& framing, std::string_view rest, AnswerEnd end) {
  if (status == 204 || status == 304) return complete(status, {});
  if (framing.chunked) return chunked_body(status, rest, end);
  if (framing.length) {
    if (rest.size() >= *framing.length) {
      return complete(status, std::string(rest.substr(0, *framing.length)));
    }
    if (end == AnswerEnd::kOpen) return incomplete();
    if (end == AnswerEnd::kClosed) {
      return malformed(
          fmt::format("the body ends after {} of {} bytes", rest.size(), *framing.length));
    }
    return complete(status, std::string(rest));
  }
  // Neither: the body is everything until the server closes.
  if (end == AnswerEnd::kOpen) return incomplete();
  return complete(status, std::string(rest));
}

}  // namespace

HttpAnswer parse_http_answer(std::string_view data, AnswerEnd end) {
  bool ended = end != AnswerEnd::kOpen;
  if (data.empty()) {
    if (!ended) return incomplete();
    return HttpAnswer{HttpAnswer::State::kMalformed, 0, {}, "connection closed without an answer"};
  }
  size_t pos = 0;
  std::optional<std::string_view> first = next_line(data, pos);
  std::string_view status_line = first ? *first : data;
  std::optional<int> status = status_of(status_line);
  bool bad_status = first || ended ? !status : !could_be_status_line(status_line);
  if (bad_status) return malformed(fmt::format("status line \"{}\"", snippet(status_line)));
  if (!first) return ended ? malformed("the headers end early") : incomplete();

  Framing framing;
  while (true) {
    std::optional<std::string_view> line = next_line(data, pos);
    if (!line) {
      if (!ended) return incomplete();
      if (end == AnswerEnd::kCapped) {
        return malformed(fmt::format("headers over {} KiB", kProbeReadLimit / 1024));
      }
      return malformed("the headers end early");
    }
    if (line->empty()) break;
    if (std::optional<std::string> problem = read_header(*line, framing)) {
      return malformed(std::move(*problem));
    }
  }
  return body_of(*status, framing, data.substr(pos), end);
}

}  // namespace baton

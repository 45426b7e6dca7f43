// HTTP/1.1 response serialization (see serializer.hpp). Lengths with std::to_chars,
// the status line of 200 a constant: a response head costs a dozen appends.
#include "http/serializer.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

namespace multinode::http::detail {

namespace {

void append_decimal(OutputQueue& out, std::uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
}

struct Reason {
  unsigned status;
  std::string_view phrase;
};

// Sorted by status. The phrases Beast's obsolete_reason() gave, which clients of
// this server have seen so far.
constexpr Reason reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {208, "Already Reported"},
    {226, "IM Used"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Entity"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {444, "Connection Closed Without Response"},
    {451, "Unavailable For Legal Reasons"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {510, "Not Extended"},
    {511, "Network Authentication Required"},
    {599, "Network Connect Timeout Error"},
};
static_assert(std::is_sorted(std::begin(reasons), std::end(reasons),
                             [](const Reason& a, const Reason& b) { return a.status < b.status; }));

}  // namespace

std::string_view reason_phrase(unsigned status) noexcept {
  const auto* found =
      std::lower_bound(std::begin(reasons), std::end(reasons), status,
                       [](const Reason& reason, unsigned code) { return reason.status < code; });
  if (found == std::end(reasons) || found->status != status) return "Unknown";
  return found->phrase;
}

void write_status_line(OutputQueue& out, unsigned status) {
  if (status == 200) {
    out.append("HTTP/1.1 200 OK\r\n");
    return;
  }
  const char digits[3] = {static_cast<char>('0' + status / 100 % 10),
                          static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10)};
  out.append("HTTP/1.1 ");
  out.append(std::string_view(digits, 3));
  out.append(' ');
  out.append(reason_phrase(status));
  out.append("\r\n");
}

void write_head(OutputQueue& out, unsigned status, std::string_view date_line, const HeadFraming& framing,
                std::string_view fields) {
  write_status_line(out, status);
  out.append(date_line);
  if (framing.content_length) {
    out.append("Content-Length: ");
    append_decimal(out, *framing.content_length);
    out.append("\r\n");
  } else if (framing.chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  if (framing.close)
    out.append("Connection: close\r\n");
  else if (framing.keep_alive)
    out.append("Connection: keep-alive\r\n");
  else if (framing.upgrade)
    out.append("Connection: upgrade\r\n");
  out.append(fields);
  out.append("\r\n");
}

void write_chunk(OutputQueue& out, std::string_view data) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, data.size(), 16);
  out.append(std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
  out.append("\r\n");
  out.append(data);
  out.append("\r\n");
}

void write_last_chunk(OutputQueue& out, std::string_view trailers) {
  out.append("0\r\n");
  out.append(trailers);
  out.append("\r\n");
}

void write_continue(OutputQueue& out) {
  out.append("HTTP/1.1 100 Continue\r\n\r\n");
}

void write_error(OutputQueue& out, unsigned status, std::string_view date_line) {
  const std::string_view reason = reason_phrase(status);
  write_status_line(out, status);
  out.append(date_line);
  out.append("Content-Type: text/plain\r\nContent-Length: ");
  append_decimal(out, reason.size() + 1);
  out.append("\r\nConnection: close\r\n\r\n");
  out.append(reason);
  out.append('\n');
}

}  // namespace multinode::http::detail

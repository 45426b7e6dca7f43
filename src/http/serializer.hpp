// HTTP/1.1 response bytes: status lines, heads, chunk framing, the server's own
// error responses and the reason phrases. Writes into a connection's OutputQueue;
// what to send (keep-alive, framing) is the connection's decision.
#pragma once

#include "http/output.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace multinode::http::detail {

// "OK", "Not Found"... as Beast's obsolete_reason() names them (what clients have
// always seen from this server); "Unknown" for a code without a phrase.
std::string_view reason_phrase(unsigned status) noexcept;

// How a head frames its body and what it says about the connection.
struct HeadFraming {
  std::optional<std::uint64_t> content_length;  // Content-Length: n
  bool chunked = false;                         // Transfer-Encoding: chunked
  bool close = false;                           // Connection: close
  bool keep_alive = false;                      // Connection: keep-alive (HTTP/1.0 clients that asked)
  bool upgrade = false;                         // Connection: upgrade (a 101 that takes the connection over)
};

void write_status_line(OutputQueue& out, unsigned status);
// Status line, Date (unless date_line is empty), framing, Connection, the handler's
// fields (complete "Name: value\r\n" lines) and the blank line.
void write_head(OutputQueue& out, unsigned status, std::string_view date_line, const HeadFraming& framing,
                std::string_view fields);
// One chunk of a chunked body (not empty: an empty chunk would end the body).
void write_chunk(OutputQueue& out, std::string_view data);
// The last chunk, the trailer fields and the blank line.
void write_last_chunk(OutputQueue& out, std::string_view trailers);
// RFC 9110 10.1.1: tells a client waiting with `Expect: 100-continue` to send the body.
void write_continue(OutputQueue& out);
// The server's own answer to a refused request: the reason phrase as a text/plain
// body, `Connection: close`.
void write_error(OutputQueue& out, unsigned status, std::string_view date_line);

}  // namespace multinode::http::detail

// Why the HTTP server refused a request: multinode::http::error, its category and the status each is answered
// with.
#pragma once

#include <system_error>

namespace multinode::http {

// Why a request was refused. Each is answered with the status status_of() gives
// and the connection is closed; the process goes on serving everyone else.
enum class error {
  bad_request_line = 1,  // 400: malformed method, target or version syntax
  bad_target,            // 400: empty request-target, or a byte outside visible ASCII in it
  target_too_long,  // 414: target above Options::max_target_length (or request line above max_header_bytes)
  unsupported_version,          // 505: well-formed HTTP version other than 1.0 and 1.1
  header_too_large,             // 431: request line and fields above Options::max_header_bytes
  too_many_headers,             // 431: more fields than Options::max_header_count
  bad_header,                   // 400: bad character in a field name or value, bad line ending
  obs_fold,                     // 400: obsolete line folding (a field line starting with SP or HTAB)
  missing_host,                 // 400: HTTP/1.1 request without Host
  duplicate_host,               // 400: more than one Host field
  bad_content_length,           // 400: Content-Length not a plain decimal, repeated, or a list
  bad_transfer_encoding,        // 400: last transfer coding not `chunked`, `chunked` twice, bad syntax
  unsupported_transfer_coding,  // 501: a transfer coding other than `chunked` before the final `chunked`
  transfer_encoding_with_content_length,  // 400: both framing fields, in either order
  transfer_encoding_on_http10,            // 400: Transfer-Encoding in an HTTP/1.0 request
  body_too_large,                         // 413: body above Options::max_body_bytes
  bad_chunk,                 // 400: bad chunk size (syntax or overflow), chunk line ending, extension syntax
  chunk_extension_too_long,  // 400: chunk extensions above Options::max_chunk_extension_bytes
  trailers_too_large,  // 431: trailer section above Options::max_header_bytes, or more trailer fields than
                       // max_header_count
  expectation_failed,  // 417: an Expect other than 100-continue
  bad_host,            // 400: a Host value that is not uri-host [":" port] (RFC 9110 7.2)
};

const std::error_category& category() noexcept;
inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), category()};
}
// The status code a request refused for this reason is answered with.
unsigned status_of(error e) noexcept;

}  // namespace multinode::http

template <>
struct std::is_error_code_enum<multinode::http::error> : std::true_type {};

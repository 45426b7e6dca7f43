// A built-in HTTP/1.1 server with a Node-like handler:
//
//   multinode::http::Server server([](multinode::http::Request& req, multinode::http::Response& res) {
//     res.set("Content-Type", "text/plain");
//     res.end("hello\n");
//   });
//   auto nodes = multinode::listen({.port = 8080, .nodes = 4}, server);
//   return nodes.run();
//
// Keep-alive, pipelining (responses in order, gathered into one write per batch),
// HTTP/1.0, chunked request and response bodies with trailers, HEAD,
// `Expect: 100-continue`, a strict parser that refuses every request-smuggling
// form, limits and timeouts on everything a client controls. docs/http.md has
// the whole story, every option and every status the server answers by itself.
#pragma once

#include <multinode/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace multinode::http {

namespace detail {
class Connection;
class RequestParser;
class RequestReader;
class ServerImpl;
}  // namespace detail

// Why a request was refused. Each is answered with the status status_of() gives
// and the connection is closed; the process goes on serving everyone else.
enum class error {
  bad_request_line = 1,         // 400: malformed method, target or version syntax
  bad_target,                   // 400: empty request-target, or a byte outside visible ASCII in it
  target_too_long,              // 414: target above Options::max_target_length (or request line above max_header_bytes)
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
  transfer_encoding_on_http10,  // 400: Transfer-Encoding in an HTTP/1.0 request
  body_too_large,               // 413: body above Options::max_body_bytes
  bad_chunk,                    // 400: bad chunk size (syntax or overflow), chunk line ending, extension syntax
  chunk_extension_too_long,     // 400: chunk extensions above Options::max_chunk_extension_bytes
  trailers_too_large,           // 431: trailer section above Options::max_header_bytes, or more trailer fields than max_header_count
  expectation_failed,           // 417: an Expect other than 100-continue
};

const std::error_category& category() noexcept;
inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), category()}; }
// The status code a request refused for this reason is answered with.
unsigned status_of(error e) noexcept;

// One header or trailer field, as received (name case preserved, value without
// surrounding whitespace). The views point into the connection's buffer.
struct Field {
  std::string_view name;
  std::string_view value;
};

// Every limit on what a client sends has a safe default. Exceeding one answers
// with the status in brackets and closes the connection.
struct Options {
  // Request line plus header fields, in bytes [431; 414 while still in the request line].
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  // Header fields in one request, and separately trailer fields [431].
  std::size_t max_header_count = 100;
  // Length of the request-target [414].
  std::size_t max_target_length = std::size_t{8} * 1024;
  // Body bytes, after removing chunked framing [413].
  std::uint64_t max_body_bytes = std::uint64_t{1024} * 1024;
  // Chunk extensions of one chunk (`;name=value...`) [400].
  std::size_t max_chunk_extension_bytes = 256;

  // From the connection's start, or the first byte of a request, to the end of
  // its head: a client sending the head slowly (slowloris) is answered 408 and cut off.
  std::chrono::milliseconds header_timeout{10'000};
  // Longest gap between two reads of a body still incomplete [408 and close].
  std::chrono::milliseconds body_timeout{30'000};
  // A keep-alive connection waiting for its next request is closed after this.
  std::chrono::milliseconds idle_timeout{5'000};
  // Longest a response write may make no progress before the connection is closed.
  std::chrono::milliseconds write_timeout{30'000};
  // After an error response the server stops sending and reads (and drops) what the
  // client still sends for at most this long before closing, so that the client
  // reads the error instead of a reset.
  std::chrono::milliseconds linger_timeout{2'000};
  // During a graceful stop, a keep-alive connection between requests stays open this
  // long: a request the client is already sending is answered (with
  // `Connection: close`) instead of failing on a closed connection. One that stays
  // quiet is closed then. This is what makes a rolling restart lose no request.
  std::chrono::milliseconds stop_grace{1'000};

  // false: the handler runs once the whole request, body included, has been read.
  // true: the handler runs once the head has been read; the body comes through
  // Request::on_data and Request::on_end (uploads larger than memory should use this).
  bool stream_body = false;
  // First size of each connection's input buffer; it grows for larger requests
  // (up to what the limits above allow) and shrinks back when the connection is idle.
  std::size_t read_buffer_size = std::size_t{8} * 1024;
  // Response::write returns false once this much output is waiting to be sent.
  std::size_t write_high_water = std::size_t{64} * 1024;
};

// A request. It and every view it returns stay valid until its response ends.
class Request {
 public:
  std::string_view method() const noexcept { return method_; }  // as sent, case preserved
  std::string_view target() const noexcept { return target_; }  // as sent, not decoded
  std::string_view path() const noexcept;                        // target up to '?'
  std::string_view query() const noexcept;                       // after '?', empty if none
  int version() const noexcept { return version_; }               // 10 or 11
  bool is_head() const noexcept { return method_ == "HEAD"; }

  std::span<const Field> headers() const noexcept { return {fields_.data(), header_count_}; }
  // First field with this name, compared case-insensitively; nullptr when absent.
  const Field* find(std::string_view name) const noexcept;
  // Value of the first field with this name, empty when absent.
  std::string_view header(std::string_view name) const noexcept;
  // Trailer fields of a chunked body (complete once the body is).
  std::span<const Field> trailers() const noexcept;

  // The whole body, chunked framing removed (empty in stream_body mode).
  std::string_view body() const noexcept { return {body_begin_, body_size_}; }
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  bool chunked() const noexcept { return chunked_; }
  // The client asked to keep the connection open (HTTP/1.1 without `Connection: close`,
  // HTTP/1.0 with `Connection: keep-alive`).
  bool keep_alive() const noexcept { return keep_alive_; }
  // An HTTP/1.1 request with `Expect: 100-continue` (the server sends 100 Continue
  // by itself when the body has not arrived yet).
  bool expects_continue() const noexcept { return expects_continue_; }

  // Options::stream_body only; set them in the handler. on_data gets each piece of
  // the body as it is read; on_end runs once the body (and its trailers) are complete.
  void on_data(std::function<void(std::string_view)> handler) { on_data_ = std::move(handler); }
  void on_end(std::function<void()> handler) { on_end_ = std::move(handler); }

 private:
  friend class detail::RequestParser;
  friend class detail::RequestReader;
  friend class detail::Connection;

  void reset() noexcept;
  // Moves every view by the same amount after the buffer under them moved.
  void rebase(const char* old_base, char* new_base, std::ptrdiff_t shift) noexcept;

  std::string_view method_;
  std::string_view target_;
  int version_ = 11;
  std::vector<Field> fields_;  // headers, then trailers; capacity kept across requests
  std::size_t header_count_ = 0;
  const char* body_begin_ = nullptr;
  std::size_t body_size_ = 0;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool expects_continue_ = false;
  std::function<void(std::string_view)> on_data_;
  std::function<void()> on_end_;
};

// The answer to one request: a handle that can be copied into asynchronous code and
// completed later. Responses go out in request order. Dropping every handle to a
// response that was never ended answers 500 and closes the connection.
class Response {
 public:
  Response(const Response& other) noexcept;
  Response(Response&& other) noexcept;
  Response& operator=(const Response& other) noexcept;
  Response& operator=(Response&& other) noexcept;
  ~Response();

  // Status code, 200 unless set; 200-999 (1xx are the server's own business).
  // Has no effect once the head has gone out (after the first write()).
  // Throws std::invalid_argument outside that range.
  Response& status(unsigned code);
  // Adds a header field. Content-Length and Transfer-Encoding are the server's
  // (it frames every response itself); `Connection: close` closes the connection
  // after this response; a Date replaces the server's own. Throws
  // std::invalid_argument for a name that is not a token or a value with CR, LF or NUL.
  Response& set(std::string_view name, std::string_view value);
  // Adds a trailer field, sent after a chunked body (ignored when the body is not chunked).
  Response& trailer(std::string_view name, std::string_view value);

  // Sends a piece of the body: the head goes out at the first write, with chunked
  // framing for HTTP/1.1 clients (HTTP/1.0 clients get the body up to the close).
  // Returns false once Options::write_high_water bytes wait to be sent, or when the
  // response has ended or its connection is gone; on_drain tells when to go on.
  bool write(std::string_view chunk);
  // Ends the response, with a last piece of body. Without an earlier write() the
  // response gets a Content-Length. Calls after the first end() do nothing.
  void end(std::string_view body = {});
  // Same, taking ownership of a large body instead of copying it.
  void end(std::string&& body);
  void end(const char* body) { end(std::string_view(body)); }

  // Runs once when the output that made write() return false has been sent.
  void on_drain(std::function<void()> handler);

  bool ended() const noexcept;
  // The connection is still open (false once the client went away or timed out).
  bool connected() const noexcept;

 private:
  friend class detail::Connection;
  Response(detail::Connection* connection, std::uint64_t generation) noexcept;
  void release() noexcept;

  detail::Connection* connection_ = nullptr;
  std::uint64_t generation_ = 0;
};

// Counters of this process's server (since start()).
struct Stats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t requests = 0;          // requests handed to the handler
  std::uint64_t bad_requests = 0;      // requests refused by the parser or the policy
  std::uint64_t header_timeouts = 0;   // heads not complete within header_timeout
  std::uint64_t body_timeouts = 0;
  std::uint64_t idle_timeouts = 0;
  std::uint64_t write_timeouts = 0;
  std::uint64_t handler_errors = 0;    // handlers that threw or dropped a response unanswered
  std::uint64_t reads = 0;             // read completions carrying request bytes
  std::uint64_t writes = 0;            // writev calls: the responses of one batch share one
};

class Server final : public multinode::Server {
 public:
  using Handler = std::function<void(Request&, Response&)>;

  explicit Server(Handler handler, Options options = {});
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on every listener; called once per serving process.
  void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) override;
  // Graceful stop: stops accepting, closes idle connections at once; each
  // connection with a request in hand answers it with `Connection: close` and closes.
  void stop() override;
  // After stop(): `done` runs (on the io_context) once every connection is closed.
  void on_drained(std::function<void()> done) override;
  // The io_context is going away: closes every connection and destroys every Asio
  // object of this server now (Response handles kept by the application go stale).
  void release() noexcept override;

  const Options& options() const noexcept;
  const Stats& stats() const noexcept;

 private:
  std::shared_ptr<detail::ServerImpl> impl_;
};

}  // namespace multinode::http

template <>
struct std::is_error_code_enum<multinode::http::error> : std::true_type {};

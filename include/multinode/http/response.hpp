// The answer to one HTTP request: a copyable handle that may be completed later.
#pragma once

#include <multinode/http/takeover.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace multinode::http {

namespace detail {
class Connection;
}  // namespace detail

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

  // Takes the connection over (include/multinode/http/takeover.hpp): writes the
  // head, with the fields set and no framing, and hands the socket to `owner`,
  // which the server then lists until it calls release(). status: 101 for a
  // request with Upgrade (the head says `Connection: upgrade`; set the Upgrade
  // field), 200-299 for a CONNECT (RFC 9110 9.3.6: no framing, the tunnel follows).
  // nullopt, and nothing written, when the status does not fit the request, the
  // head is already out, the response has ended or the connection is gone.
  std::optional<Handover> take_over(TakenOver& owner, unsigned status);

  bool ended() const noexcept;
  // The connection is still open (false once the client went away or timed out).
  bool connected() const noexcept;

 private:
  friend class detail::Connection;
  Response(detail::Connection* connection, std::uint64_t generation) noexcept;
  // Lets go of the connection (the handle names nothing afterwards).
  void detach() noexcept;

  detail::Connection* connection_ = nullptr;
  std::uint64_t generation_ = 0;
};

}  // namespace multinode::http

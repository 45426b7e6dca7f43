// WebSocket (RFC 6455) connections taken over from the HTTP server: an upgrade
// request the HTTP server already parsed becomes a multinode::websocket::Connection.
//
//   multinode::http::Server server([&](http::Request& request, http::Response& response) {
//     if (request.path() != "/ws") return response.status(404).end("not found\n");
//     auto socket = websocket::accept(request, response, ws_options);
//     if (!socket) return;  // not a valid upgrade: accept() has answered it (400, 403, 426)
//     socket->on_message([socket](std::string_view data, websocket::Kind kind) {
//       socket->send(data, kind);  // the handlers are let go of at the close: no cycle
//     });
//   });
//
// docs/websocket.md describes the choices behind it, the limits and what they cost.
#pragma once

#include <multinode/http/request.hpp>
#include <multinode/http/response.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::websocket {

// What a data message carries (RFC 6455 §5.6): UTF-8 text (checked) or bytes.
enum class Kind : std::uint8_t { text, binary };

// Close codes (RFC 6455 §7.4.1) the library sends or reports.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;  // the server stops (graceful stop)
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;  // reported only: the close frame had no code
inline constexpr std::uint16_t abnormal = 1006;   // reported only: the connection ended without a close frame
inline constexpr std::uint16_t invalid_payload = 1007;   // text that is not UTF-8
inline constexpr std::uint16_t policy_violation = 1008;  // e.g. past max_buffered_bytes
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace close_code

// Every limit on what a peer sends, or makes the server hold, has a safe default.
struct Options {
  // Largest message, after reassembling its fragments [close 1009].
  std::size_t max_message_bytes = std::size_t{1} * 1024 * 1024;
  // A ping is sent after this long without anything received; 0: never.
  std::chrono::milliseconds ping_interval{30'000};
  // A peer that sends nothing (no pong, no data) this long after a ping is dead:
  // the connection is closed (reported as 1006).
  std::chrono::milliseconds pong_timeout{10'000};
  // The closing handshake: after sending a close frame, how long to wait for the
  // peer's (or, after a protocol error, for the peer's end of stream) before the
  // TCP connection is closed anyway. (The opening handshake is an HTTP request,
  // bounded by http::Options::header_timeout.)
  std::chrono::milliseconds handshake_timeout{5'000};
  // Origin header values allowed to connect (exact, case-insensitive, e.g.
  // "https://chat.example"); empty allows any. A refused origin is answered 403.
  std::vector<std::string> allowed_origins;
  // Subprotocols the server speaks, in its order of preference: the first of them
  // the client offers (Sec-WebSocket-Protocol) is selected; none offered or none
  // in common selects none (the connection is still accepted).
  std::vector<std::string> subprotocols;
  // Output queued for a slow client past which send() refuses and the connection
  // is closed with 1008: nothing more is queued, what is queued (and the close
  // frame) may still go out within handshake_timeout, then the TCP connection is cut.
  std::size_t max_buffered_bytes = std::size_t{4} * 1024 * 1024;
  // send() returns false once this much output is queued; on_drain tells when it is sent.
  std::size_t write_high_water = std::size_t{64} * 1024;
  // permessage-deflate (RFC 7692), off unless enabled: a client that offers it
  // (browsers, ws, python-websockets do) gets it, and its compressed messages are
  // inflated up to max_message_bytes (the inflated size: past it, close 1009).
  // Without context takeover (the default) zlib's state (~301 KiB for a
  // compressor and a decompressor at the defaults) is per thread, borrowed by a
  // connection for one message; a connection itself adds ~80 bytes. With
  // deflate_context_takeover, each connection holds its own from its first
  // compressed message on (docs/websocket.md, "Memory of permessage-deflate").
  bool permessage_deflate = false;
  // Keep each direction's compression context from one message to the next
  // (better ratios for similar messages; the zlib state, ~301 KiB per connection
  // at the defaults, is then held for the connection's life). false answers with
  // server_no_context_takeover and client_no_context_takeover, and a connection
  // holds no zlib state between messages.
  bool deflate_context_takeover = false;
  // The LZ77 window, 2^bits bytes (9-15): ours (server_max_window_bits, or less
  // when the client asks less) and the most asked of a client that offers
  // client_max_window_bits. Each bit less halves the window's memory.
  int deflate_window_bits = 15;
  // zlib's memLevel (1-9) for our compressor: its hash tables take 2^(level+9) bytes.
  int deflate_memory_level = 8;
  // Messages sent smaller than this go uncompressed (a permessage-deflate peer
  // takes both), and, without context takeover, one that compression would not
  // make smaller.
  std::size_t deflate_threshold = 1024;
};

// One encoded message, ready to go to any number of connections: the bytes are
// encoded once and shared (not copied) by every connection it is sent to. It goes
// uncompressed, to permessage-deflate connections too (which take both).
class Frame {
 public:
  // Throws std::invalid_argument for text that is not UTF-8.
  static Frame text(std::string_view data);
  static Frame binary(std::string_view data);

  Kind kind() const noexcept { return kind_; }
  std::size_t payload_size() const noexcept { return payload_size_; }
  // The whole frame as it goes on the wire (header and unmasked payload).
  const std::shared_ptr<const std::string>& wire() const noexcept { return wire_; }

 private:
  Frame(Kind kind, std::size_t payload_size, std::shared_ptr<const std::string> wire) noexcept
      : kind_(kind), payload_size_(payload_size), wire_(std::move(wire)) {}
  Kind kind_;
  std::size_t payload_size_;
  std::shared_ptr<const std::string> wire_;  // header and payload, as they go on the wire
};

class Connection {
 public:
  using MessageHandler = std::function<void(std::string_view data, Kind kind)>;
  using CloseHandler = std::function<void(std::uint16_t code, std::string_view reason)>;

  virtual ~Connection() = default;

  // Queue a message. False when it was not queued (the connection is closing or
  // closed, text that is not UTF-8, or it would pass max_buffered_bytes, which
  // closes with 1008) or when write_high_water is passed (it was queued; wait for
  // on_drain before sending more). Inside this connection's on_message, gathered
  // with the other answers to the same read into one write after it; from
  // anywhere else, written once the running handler returns, with whatever else
  // this connection was sent meanwhile (at once when write_high_water is reached).
  virtual bool send(std::string_view data, Kind kind = Kind::text) = 0;
  virtual bool send(const Frame& frame) = 0;
  // Starts the closing handshake with this code and reason (at most 123 bytes of UTF-8).
  virtual void close(std::uint16_t code = close_code::normal, std::string_view reason = {}) = 0;

  // Bytes queued and not yet handed to the kernel.
  virtual std::size_t buffered_amount() const noexcept = 0;
  // Open: neither side has started closing.
  virtual bool is_open() const noexcept = 0;
  // The subprotocol selected at the handshake, empty when none.
  virtual std::string_view subprotocol() const noexcept = 0;

  // Set these right after accept(): nothing is delivered before the handler that
  // called accept() returns. on_close runs once, however the connection ended,
  // with the code of the closing handshake: the peer's when it closed first, the one
  // sent when this side did (close(), 1001 at a stop, 1002/1007/1009 for what the
  // peer broke, 1008 past max_buffered_bytes), 1006 when no close frame was exchanged
  // (the peer vanished, or did not answer a ping within pong_timeout). The
  // handlers are let go of then, so they may hold the connection's shared_ptr.
  virtual void on_message(MessageHandler handler) = 0;
  virtual void on_close(CloseHandler handler) = 0;
  // Each time output that made send() return false has all been written.
  virtual void on_drain(std::function<void()> handler) = 0;
};

// True when the request asks for a WebSocket upgrade (GET, Connection: upgrade,
// Upgrade: websocket).
bool is_upgrade(const http::Request& request) noexcept;

// Takes the request's connection over: answers 101 and returns the open
// connection. When the request is not a valid upgrade (a missing or malformed
// Sec-WebSocket-Key, a version other than 13, a refused Origin) it answers the
// request itself (400, 426 with Sec-WebSocket-Version: 13, or 403) and returns nullptr.
// The connection lives until it is closed, whether or not the caller keeps the pointer.
std::shared_ptr<Connection> accept(http::Request& request, http::Response& response,
                                   const Options& options = {});

}  // namespace multinode::websocket

// permessage-deflate (RFC 7692): the negotiation of its parameters in the opening
// handshake (a pure function of the offer, fuzzed and unit-tested), and the
// zlib streams of a connection. Where the parameters allow (no context takeover
// in that direction, the default) a connection holds no zlib state between
// messages: the streams are the thread's, borrowed for a message; with context
// takeover a connection has its own from its first compressed message on. A
// connection that negotiated the extension costs its two small objects besides.
// docs/websocket.md gives the memory figures.
#pragma once

#include <multinode/websocket.hpp>

#include "websocket/utf8.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct z_stream_s;  // zlib's, defined in <zlib.h> (deflate.cpp only)

namespace multinode::websocket::detail {

// What both sides agreed on (RFC 7692 §7.1).
struct DeflateParameters {
  bool server_no_context_takeover = true;  // our compressor starts afresh with each message
  bool client_no_context_takeover = true;  // the client's does: our inflater may too
  int server_max_window_bits = 15;         // our compressor's LZ77 window, 9-15
  int client_max_window_bits = 15;         // the client's at most, 8-15: our inflater's
};

struct DeflateAgreement {
  DeflateParameters parameters;
  std::string response;  // the Sec-WebSocket-Extensions value to answer with
};

// The Sec-WebSocket-Extensions value of a request (its field lines joined with
// ", "): the first permessage-deflate offer the options accept, or nullopt (the
// connection goes without the extension). An offer with an unknown parameter, a
// parameter twice, a value out of range or a syntax error is declined (RFC 7692 §5),
// and the next one looked at; other extensions are ignored.
std::optional<DeflateAgreement> negotiate_deflate(std::string_view offers, const Options& options);

// A zlib stream whose allocations are counted (deflate.cpp).
struct ZlibStream;

// The client's compressed messages, frame by frame (RFC 7692 §7.2.2). Without
// context takeover (client_no_context_takeover) it holds a zlib stream only from
// a compressed message's first frame to its last, borrowed from a pool of the
// thread's; with it, one of its own from the first compressed message on.
class Inflater {
 public:
  Inflater(int window_bits, bool reset_each_message) noexcept;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater();

  enum class Result : std::uint8_t { ok, too_big, not_utf8, corrupt, no_memory };
  // Inflates a part of a compressed message onto out, which may grow to at most
  // limit bytes (past it: too_big, and nothing more is allocated). With utf8 (a
  // text message), what comes out is checked as it comes: the outcome depends on
  // the first output byte that is not UTF-8 or past the limit, not on how the
  // input was cut.
  Result inflate(const unsigned char* data, std::size_t size, std::string& out, std::size_t limit,
                 Utf8Validator* utf8);
  // The message's last frame was inflated: its 00 00 ff ff tail (§7.2.2) goes in.
  Result finish_message(std::string& out, std::size_t limit, Utf8Validator* utf8);
  // Between messages: without context takeover nothing is held then anyway; with
  // it the stream stays (it holds the window the next message may refer to).
  void release_if_idle() noexcept;
  // Ends the stream (the connection is closed).
  void release() noexcept;
  // zlib's allocations this connection holds (0 between messages without context takeover).
  std::size_t held_bytes() const noexcept;

 private:
  std::unique_ptr<ZlibStream> stream_;
  int window_bits_;
  bool reset_each_message_;
};

// The server's messages (RFC 7692 §7.2.1). Without context takeover
// (server_no_context_takeover) each message borrows the thread's stream for the
// call and gives it back reset: no memory per connection; with it, a stream of
// its own from the first compressed message on.
class Deflater {
 public:
  Deflater(int window_bits, int memory_level, bool reset_each_message, std::size_t threshold) noexcept;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater();

  // Whether a message of this size is worth compressing (Options::deflate_threshold).
  bool wants(std::size_t size) const noexcept { return size >= threshold_; }
  // A whole message compressed into out (replaced), without the 00 00 ff ff tail.
  // False when zlib could not (no memory): the message goes uncompressed.
  bool compress(std::string_view data, std::string& out);
  // Whether a message that compressed was may still go uncompressed: only when
  // the compressor starts afresh with each message (otherwise its window holds the
  // message, and the client's would not).
  bool may_send_uncompressed_after_compress() const noexcept { return reset_each_message_; }
  void release_if_idle() noexcept;
  void release() noexcept;
  std::size_t held_bytes() const noexcept;

 private:
  std::unique_ptr<ZlibStream> stream_;  // with context takeover only
  std::size_t threshold_;
  int window_bits_;
  int memory_level_;
  bool reset_each_message_;
};

}  // namespace multinode::websocket::detail

// The WebSocket frame layer (RFC 6455 §5): the decoder of what a client sends, with
// every rule of §5 checked in one place (reserved bits, opcodes, control frames,
// masking, fragmentation, the message size limit, UTF-8 of text and of close
// reasons, close codes, and RSV1 with permessage-deflate), and the encoder of the
// server's unmasked frames. Pure functions of bytes, no I/O:
// fuzz/websocket_decoder_fuzz.cpp drives it directly.
#pragma once

#include <multinode/websocket.hpp>

#include "websocket/deflate.hpp"
#include "websocket/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace multinode::websocket::detail {

// What a string holds on the heap (none while its bytes fit in the object itself).
inline std::size_t heap_bytes(const std::string& s) noexcept {
  return s.capacity() > std::string().capacity() ? s.capacity() : 0;
}

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA
};

// What the decoder found, in the order the frames came.
class DecoderSink {
 public:
  // A whole message: one frame, or its fragments joined. The view lasts for the call.
  virtual void on_message(std::string_view data, Kind kind) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // A valid close frame; code is close_code::no_status when it carried none.
  virtual void on_close_frame(std::uint16_t code, std::string_view reason) = 0;

 protected:
  ~DecoderSink() = default;
};

// Close codes a peer may send (RFC 6455 §7.4, the IANA registry): 1000-1003,
// 1007-1014 and 3000-4999 (registered and private use).
bool is_valid_close_code(std::uint16_t code) noexcept;

class Decoder {
 public:
  explicit Decoder(std::size_t max_message_bytes) noexcept : max_message_bytes_(max_message_bytes) {}

  // permessage-deflate was negotiated: RSV1 marks a compressed message, which
  // this inflater inflates (max_message_bytes bounds the inflated size).
  void enable_deflate(std::unique_ptr<Inflater> inflater) noexcept { inflater_ = std::move(inflater); }
  bool deflate_enabled() const noexcept { return inflater_ != nullptr; }

  // Decodes the whole frames at the front of data (unmasking them in place) and
  // stops before one that is not complete yet; returns the bytes consumed. After a
  // close frame or a failure it consumes nothing more. What it did not consume
  // must come back unchanged at the front of the next call, followed by what came
  // since: the part of a data frame that has arrived is already unmasked and looked
  // at (UTF-8 checked, or inflated), so that invalid text fails at the first byte
  // that cannot be UTF-8, not when the frame is whole.
  std::size_t decode(char* data, std::size_t size, DecoderSink& sink);

  // A rule was broken: the close code to fail the connection with (1002, 1007 or
  // 1009) and what happened; 0 while none was.
  std::uint16_t failure() const noexcept { return failure_; }
  const char* failure_reason() const noexcept { return failure_reason_; }
  // A close frame was decoded (the peer sends nothing after it).
  bool closed() const noexcept { return closed_; }
  // Between messages: no fragment of an unfinished one is held.
  bool between_messages() const noexcept { return !fragmented_ && seen_ == 0; }
  // Gives back the memory of reassembled messages when none is in progress, and
  // the inflater's zlib state when no context is taken over between messages.
  void free_memory() noexcept;
  // At the end of the connection: everything, the inflater's state too.
  void release_all() noexcept;
  std::size_t held_bytes() const noexcept { return heap_bytes(message_) + inflater_held_bytes(); }
  std::size_t inflater_held_bytes() const noexcept { return inflater_ ? inflater_->held_bytes() : 0; }

 private:
  // The payload bytes [from, to) of the data frame at the front, unmasked: checked
  // as UTF-8 or inflated. False when that failed the connection.
  bool take_payload(char* payload, std::size_t from, std::size_t to, const unsigned char key[4]);
  std::size_t fail_inflate(Inflater::Result result, std::size_t consumed) noexcept;

  std::size_t fail(std::uint16_t code, const char* reason, std::size_t consumed) noexcept {
    failure_ = code;
    failure_reason_ = reason;
    return consumed;
  }

  std::size_t max_message_bytes_;
  std::string message_;  // the fragments of the message in progress, joined (inflated when compressed)
  std::unique_ptr<Inflater> inflater_;  // permessage-deflate negotiated
  std::size_t seen_ = 0;                // payload bytes of the cut data frame at the front already taken
  Utf8Validator utf8_;                  // across the fragments of a text message
  std::uint16_t failure_ = 0;
  const char* failure_reason_ = "";
  bool fragmented_ = false;
  bool compressed_ = false;  // the message in progress had RSV1
  bool closed_ = false;
  Kind kind_ = Kind::text;
};

// The size of a server frame's header for this payload (2, 4 or 10 bytes).
constexpr std::size_t header_size(std::size_t payload) noexcept {
  return payload < 126 ? 2 : payload <= 0xFFFF ? 4 : 10;
}
// Writes a final, unmasked frame's header into out (header_size(payload) bytes);
// compressed sets RSV1 (permessage-deflate).
void write_header(char* out, Opcode opcode, std::size_t payload, bool compressed = false) noexcept;
// The whole frame, header then payload.
std::string encode_frame(Opcode opcode, std::string_view payload);
// A close frame's payload: the code, then at most 123 bytes of reason (cut at a
// code point boundary when longer).
std::string close_payload(std::uint16_t code, std::string_view reason);
// Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2): base64(SHA-1(key + GUID)).
std::string accept_key(std::string_view key);

}  // namespace multinode::websocket::detail

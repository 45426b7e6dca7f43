// The peer stream frame format (docs/protocol.md, "Peer stream frames") and a
// decoder that turns complete frames in a read buffer into messages in place.
//
//   offset 0  type      u8   1 text, 2 binary, 3 JSON, 4 control
//   offset 1  reserved  3 bytes, zero
//   offset 4  length    u32 little-endian: payload bytes that follow
#pragma once

#include <multinode/error.hpp>
#include <multinode/frame.hpp>

#include "ipc/byte_queue.hpp"
#include "ipc/utf8.hpp"

#include <boost/json/memory_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/storage_ptr.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace multinode::detail {

inline constexpr std::size_t frame_header_size = 8;
// The length field is 32 bits wide.
inline constexpr std::size_t max_frame_size_limit = 0xFFFFFFFFu;

enum class FrameType : std::uint8_t { text = 1, binary = 2, json = 3, control = 4 };

// Control frames: the first payload byte is an opcode.
inline constexpr std::uint8_t control_close = 1;
// A close frame is opcode, u16 code, reason; like WebSocket's, its payload is short.
inline constexpr std::size_t max_control_payload = 128;
inline constexpr std::size_t max_close_reason = max_control_payload - 3;

// Close codes on the wire. 0 is a normal close; the others say which frame
// error made the sender close the stream. Values are fixed by the protocol.
inline constexpr std::uint16_t close_normal = 0;
std::uint16_t close_code_for(std::error_code error) noexcept;

inline void write_frame_header(char* out, FrameType type, std::uint32_t length) noexcept {
  auto b = reinterpret_cast<unsigned char*>(out);
  b[0] = static_cast<unsigned char>(type);
  b[1] = b[2] = b[3] = 0;
  b[4] = static_cast<unsigned char>(length);
  b[5] = static_cast<unsigned char>(length >> 8);
  b[6] = static_cast<unsigned char>(length >> 16);
  b[7] = static_cast<unsigned char>(length >> 24);
}

struct FrameHeader {
  FrameType type;
  std::uint32_t length;
};

// Checks the header at `data` (frame_header_size bytes), in the order the
// protocol documents: reserved bytes, type, length.
inline std::error_code parse_frame_header(const char* data, std::size_t max_frame_size,
                                          FrameHeader& header) noexcept {
  auto b = reinterpret_cast<const unsigned char*>(data);
  if ((b[1] | b[2] | b[3]) != 0) return errc::bad_frame_header;
  if (b[0] < 1 || b[0] > 4) return errc::bad_frame_type;
  std::uint32_t length =
      std::uint32_t(b[4]) | std::uint32_t(b[5]) << 8 | std::uint32_t(b[6]) << 16 | std::uint32_t(b[7]) << 24;
  header.type = static_cast<FrameType>(b[0]);
  header.length = length;
  if (header.type == FrameType::control && length > max_control_payload) return errc::bad_control_frame;
  if (length > max_frame_size) return errc::frame_too_large;
  return {};
}

// Appends a close control frame to `out`.
void append_close_frame(ByteQueue& out, std::uint16_t code, std::string_view reason);

// Where received JSON values live: a bump allocator whose memory is reused for
// the next message, so that parsing a small object allocates nothing. It is a
// shared resource so that a value a handler copies keeps it alive; the decoder
// notices such copies (they allocate from it) and then leaves the arena to them.
class JsonArena : public boost::json::memory_resource {
 public:
  // Boost.JSON's shared resource holds the arena as a private member: `self`
  // tells its creator where it is.
  explicit JsonArena(JsonArena*& self) noexcept { self = this; }
  JsonArena(const JsonArena&) = delete;
  JsonArena& operator=(const JsonArena&) = delete;
  ~JsonArena() override;

  std::uint64_t allocations() const noexcept { return allocations_; }
  // Forgets every allocation: only when no value uses the arena any more. Keeps
  // one block, grown to what the last message needed (up to a bound).
  void reset() noexcept;

 private:
  struct Block {
    Block* next;
  };
  void* do_allocate(std::size_t size, std::size_t alignment) override;
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
  void* allocate_slow(std::size_t size, std::size_t alignment);

  char* first_ = nullptr;
  std::size_t first_size_ = 0;
  char* cursor_ = nullptr;
  char* limit_ = nullptr;
  Block* extra_ = nullptr;
  std::size_t used_ = 0;
  std::uint64_t allocations_ = 0;
};

}  // namespace multinode::detail

template <>
struct boost::json::is_deallocate_trivial<multinode::detail::JsonArena> {
  static constexpr bool value = true;
};

namespace multinode::detail {

// Decodes the frames at the front of a read buffer. A frame is consumed before
// its message is handed on, and its message views the buffer; an incomplete
// frame stays in the buffer and bytes_needed() says how large it is.
//
// Sink: bool on_message(const Message&) and
//       bool on_close_frame(std::uint16_t code, std::string_view reason);
// each returns false to stop decoding (the stream closed or paused).
class FrameDecoder {
 public:
  explicit FrameDecoder(const FrameOptions& options);

  const FrameOptions& options() const noexcept { return options_; }
  // Total bytes (header and payload) of the incomplete frame at the front of the
  // buffer after the last decode(), or 0.
  std::size_t bytes_needed() const noexcept { return needed_; }

  // Returns the error of the first bad frame; the stream must then be closed.
  template <typename Sink>
  std::error_code decode(ByteQueue& in, Sink& sink);

 private:
  // After a JSON message's handler returned and the value is gone.
  struct ArenaRecycler {
    explicit ArenaRecycler(FrameDecoder& d) noexcept : decoder(d) {}
    ~ArenaRecycler() { decoder.recycle_arena(); }
    FrameDecoder& decoder;
  };
  std::error_code parse_json(const char* data, std::size_t size);
  void recycle_arena();

  FrameOptions options_;
  std::size_t needed_ = 0;
  JsonArena* arena_raw_ = nullptr;  // what arena_ points to
  boost::json::storage_ptr arena_;
  boost::json::parser parser_;
  std::uint64_t allocations_after_parse_ = 0;
};

template <typename Sink>
std::error_code FrameDecoder::decode(ByteQueue& in, Sink& sink) {
  for (;;) {
    needed_ = 0;
    std::size_t available = in.size();
    if (available < frame_header_size) {
      if (available != 0) needed_ = frame_header_size;
      return {};
    }
    FrameHeader header;
    // The header is checked as soon as it is in, so that an oversized frame is
    // refused before any of its payload is buffered.
    if (std::error_code error = parse_frame_header(in.data(), options_.max_frame_size, header)) return error;
    std::size_t total = frame_header_size + header.length;
    if (available < total) {
      needed_ = total;
      return {};
    }
    const char* payload = in.data() + frame_header_size;
    std::size_t length = header.length;
    // Consumed before a handler runs: a handler that throws never gets the frame
    // twice. The bytes stay where they are until the next read.
    in.consume(total);
    bool go_on = true;
    switch (header.type) {
      case FrameType::binary:
        go_on = sink.on_message(Message(Message::Kind::binary, std::string_view(payload, length)));
        break;
      case FrameType::text:
        if (!is_valid_utf8(payload, length)) return errc::invalid_utf8;
        go_on = sink.on_message(Message(Message::Kind::text, std::string_view(payload, length)));
        break;
      case FrameType::json: {
        if (std::error_code error = parse_json(payload, length)) return error;
        ArenaRecycler recycler(*this);  // destroyed after the message below
        Message message(parser_.release(), false);
        go_on = sink.on_message(message);
        break;
      }
      case FrameType::control: {
        if (length < 1) return errc::bad_control_frame;
        auto opcode = static_cast<std::uint8_t>(payload[0]);
        // Unknown control opcodes are ignored, so that later versions can add some.
        if (opcode != control_close) break;
        if (length < 3) return errc::bad_control_frame;
        auto code = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[1]) |
                                               static_cast<unsigned char>(payload[2]) << 8);
        std::string_view reason(payload + 3, length - 3);
        if (!is_valid_utf8(reason)) return errc::bad_control_frame;
        go_on = sink.on_close_frame(code, reason);
        break;
      }
    }
    if (!go_on) return {};
  }
}

}  // namespace multinode::detail

// What the bridge puts on Redis and takes from it, with no I/O: the Redis URL, the
// envelope around a framed message (docs/bridge.md, "On the wire"), and the reply
// reader (Debian's hiredis: its RESP reader and command formatter).
//
//   offset 0   magic    4 bytes "MNB1"
//   offset 4   host     u64 little-endian: the publishing host's id
//   offset 12  node     u32 little-endian: the publishing process's id on that host
//   offset 16  frame    exactly one peer stream frame (docs/protocol.md): text, binary or JSON
// A Redis payload is one or more envelopes back to back.
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;
struct redisReply;

namespace multinode::detail {

// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  unsigned db = 0;
  std::string password;
};
// Empty with `error` set to what is wrong in it.
std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string& error);

inline constexpr std::size_t envelope_header_size = 16;
inline constexpr std::string_view envelope_magic = "MNB1";

// The envelope of one message; throws std::system_error for a message that
// cannot be framed (not UTF-8 text).
std::string encode_envelope(std::uint64_t host, std::uint32_t node, const Message& message);

// A payload read from a channel, decoded.
struct Envelope {
  BridgeRejection rejection = BridgeRejection::none;  // none: message, host, node are set
  std::uint64_t host = 0;
  std::uint32_t node = 0;
  std::optional<Message> message;
};
// Checks, in order: size (oversized), magic (foreign), frame header and length
// (malformed: one frame, nothing after it), payload (text UTF-8, JSON parsing
// within max_json_depth: malformed). Only the header when headers_only: a receiver
// that drops its own host's messages before decoding them.
Envelope decode_envelope(std::string_view payload, std::size_t max_message, std::size_t max_json_depth);
// A PUBLISH payload holds one or more envelopes back to back (a publisher's batch).
// The size of the envelope at the front of `payload` (header and frame), read
// from its frame header, or 0 when no envelope header is there; it may be larger
// than what is left (cut short).
std::size_t envelope_size(std::string_view payload) noexcept;
// The host and node of a payload with a valid envelope header, else nothing.
bool peek_envelope_origin(std::string_view payload, std::uint64_t& host, std::uint32_t& node) noexcept;

// RESP commands, formatted by hiredis.
std::string format_command(const std::vector<std::string_view>& arguments);

// hiredis's reply reader: feed bytes, take complete replies.
class ReplyReader {
 public:
  // A reply larger than max_buffered bytes (the largest message plus slack)
  // makes the reader fail: Redis never sends one to a bridge that only publishes
  // what fits, so it is an error, and the buffered bytes stay bounded.
  explicit ReplyReader(std::size_t max_buffered);
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  struct ReplyDeleter {
    void operator()(redisReply* reply) const noexcept;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  // False when the stream is broken (error() says why): the connection must be dropped.
  bool feed(const char* data, std::size_t size);
  // The next complete reply, or null when more bytes are needed or on error.
  Reply next();
  bool failed() const noexcept { return !error_.empty(); }
  const std::string& error() const noexcept { return error_; }

 private:
  redisReader* reader_;
  std::size_t max_buffered_;
  std::string error_;
};

// What a reply on a subscribed connection is.
struct PushMessage {
  enum class Kind { message, subscribed, other, invalid };
  Kind kind = Kind::invalid;
  std::string_view channel;  // message, subscribed
  std::string_view payload;  // message
};
PushMessage classify_push(const redisReply& reply) noexcept;

}  // namespace multinode::detail

#include "bridge/codec.hpp"

#include <multinode/error.hpp>

#include "ipc/frame_codec.hpp"
#include "ipc/utf8.hpp"

#include <hiredis/hiredis.h>

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <new>
#include <system_error>

namespace multinode::detail {

namespace {

bool parse_number(std::string_view text, unsigned long max, unsigned long& out) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc{} && end == text.data() + text.size() && out <= max;
}

void put_le(char* out, std::uint64_t value, int bytes) noexcept {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>(value >> (8 * i));
}
std::uint64_t get_le(const char* in, int bytes) noexcept {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= std::uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

}  // namespace

std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string& error) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    error = "the bridge URL must start with redis:// (e.g. redis://127.0.0.1:6379/0)";
    return std::nullopt;
  }
  url.remove_prefix(scheme.size());
  RedisUrl result;
  if (const auto at = url.rfind('@'); at != std::string_view::npos) {
    std::string_view credentials = url.substr(0, at);
    url.remove_prefix(at + 1);
    const auto colon = credentials.find(':');
    // redis://:PASSWORD@ or redis://USER:PASSWORD@ (the user is not used: Redis 5's AUTH takes a password)
    result.password =
        std::string(colon == std::string_view::npos ? credentials : credentials.substr(colon + 1));
  }
  std::string_view path;
  if (const auto slash = url.find('/'); slash != std::string_view::npos) {
    path = url.substr(slash + 1);
    url = url.substr(0, slash);
  }
  std::string_view port;
  if (!url.empty() && url.front() == '[') {  // [::1]:6379
    const auto close = url.find(']');
    if (close == std::string_view::npos) {
      error = "the bridge URL's IPv6 address has no closing ']'";
      return std::nullopt;
    }
    result.host = std::string(url.substr(1, close - 1));
    std::string_view rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        error = "the bridge URL has something other than :PORT after its address";
        return std::nullopt;
      }
      port = rest.substr(1);
      if (port.empty()) port = "x";
    }
  } else if (const auto colon = url.rfind(':'); colon != std::string_view::npos) {
    result.host = std::string(url.substr(0, colon));
    port = url.substr(colon + 1);
    if (port.empty()) port = "x";
  } else {
    result.host = std::string(url);
  }
  if (result.host.empty()) {
    error = "the bridge URL has no host: redis://HOST:PORT";
    return std::nullopt;
  }
  unsigned long number = 0;
  if (!port.empty()) {
    if (!parse_number(port, 65535, number) || number == 0) {
      error = "the bridge URL's port is not a number from 1 to 65535";
      return std::nullopt;
    }
    result.port = static_cast<std::uint16_t>(number);
  }
  if (!path.empty()) {
    if (!parse_number(path, 1u << 20, number)) {
      error = "the bridge URL's database (after /) is not a number";
      return std::nullopt;
    }
    result.db = static_cast<unsigned>(number);
  }
  return result;
}

std::string encode_envelope(std::uint64_t host, std::uint32_t node, const Message& message) {
  std::string json;
  std::string_view payload = message.bytes();
  FrameType type = FrameType::binary;
  if (message.is_json()) {
    json = boost::json::serialize(message.json_value());
    payload = json;
    type = FrameType::json;
  } else if (message.is_text()) {
    if (!is_valid_utf8(payload)) throw std::system_error(make_error_code(errc::invalid_utf8), "publish");
    type = FrameType::text;
  }
  if (payload.size() > max_frame_size_limit)
    throw std::system_error(make_error_code(errc::frame_too_large), "publish");
  std::string out(envelope_header_size + frame_header_size + payload.size(), '\0');
  out.replace(0, envelope_magic.size(), envelope_magic);
  put_le(out.data() + 4, host, 8);
  put_le(out.data() + 12, node, 4);
  write_frame_header(out.data() + envelope_header_size, type, static_cast<std::uint32_t>(payload.size()));
  out.replace(envelope_header_size + frame_header_size, payload.size(), payload);
  return out;
}

bool peek_envelope_origin(std::string_view payload, std::uint64_t& host, std::uint32_t& node) noexcept {
  if (payload.size() < envelope_header_size + frame_header_size) return false;
  if (payload.substr(0, envelope_magic.size()) != envelope_magic) return false;
  host = get_le(payload.data() + 4, 8);
  node = static_cast<std::uint32_t>(get_le(payload.data() + 12, 4));
  return true;
}

std::size_t envelope_size(std::string_view payload) noexcept {
  if (payload.size() < envelope_header_size + frame_header_size) return 0;
  if (payload.substr(0, envelope_magic.size()) != envelope_magic) return 0;
  return envelope_header_size + frame_header_size + get_le(payload.data() + envelope_header_size + 4, 4);
}

Envelope decode_envelope(std::string_view payload, std::size_t max_message, std::size_t max_json_depth) {
  Envelope result;
  if (payload.size() > max_message) {
    result.rejection = BridgeRejection::oversized;
    return result;
  }
  if (!peek_envelope_origin(payload, result.host, result.node)) {
    result.rejection = BridgeRejection::foreign;
    return result;
  }
  result.rejection = BridgeRejection::malformed;
  FrameHeader header{};
  if (parse_frame_header(payload.data() + envelope_header_size, max_frame_size_limit, header)) return result;
  const std::string_view body = payload.substr(envelope_header_size + frame_header_size);
  if (header.length != body.size()) return result;  // one frame, whole, nothing after it
  switch (header.type) {
    case FrameType::text:
      if (!is_valid_utf8(body)) return result;
      result.message = Message::text_view(body);
      break;
    case FrameType::binary:
      result.message = Message::binary_view(body);
      break;
    case FrameType::json: {
      boost::json::parse_options options;
      options.max_depth = max_json_depth;
      std::error_code error;
      boost::json::value value = boost::json::parse(body, error, {}, options);
      if (error) return result;
      result.message = Message::json(std::move(value));
      break;
    }
    case FrameType::control:
      return result;
  }
  result.rejection = BridgeRejection::none;
  return result;
}

std::string format_command(const std::vector<std::string_view>& arguments) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(arguments.size());
  lengths.reserve(arguments.size());
  for (const auto& argument : arguments) {
    argv.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  char* command = nullptr;
  const int length =
      redisFormatCommandArgv(&command, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (length < 0 || command == nullptr) throw std::bad_alloc();
  std::string out(command, static_cast<std::size_t>(length));
  redisFreeCommand(command);
  return out;
}

void ReplyReader::ReplyDeleter::operator()(redisReply* reply) const noexcept {
  freeReplyObject(reply);
}

ReplyReader::ReplyReader(std::size_t max_buffered)
    : reader_(redisReaderCreate()), max_buffered_(max_buffered) {
  if (reader_ == nullptr) throw std::bad_alloc();
}

ReplyReader::~ReplyReader() {
  redisReaderFree(reader_);
}

bool ReplyReader::feed(const char* data, std::size_t size) {
  if (failed()) return false;
  if (redisReaderFeed(reader_, data, size) != REDIS_OK) {
    error_ = reader_->errstr[0] != '\0' ? reader_->errstr : "the reply reader failed";
    return false;
  }
  return true;
}

ReplyReader::Reply ReplyReader::next() {
  if (failed()) return nullptr;
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
    error_ = reader_->errstr[0] != '\0' ? reader_->errstr : "a reply did not parse";
    return nullptr;
  }
  if (reply == nullptr && reader_->len - reader_->pos > max_buffered_) {
    error_ = "a reply larger than bridge_max_message";
    return nullptr;
  }
  return Reply(static_cast<redisReply*>(reply));
}

PushMessage classify_push(const redisReply& reply) noexcept {
  PushMessage push;
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 1 || reply.element[0]->type != REDIS_REPLY_STRING)
    return push;
  const std::string_view kind(reply.element[0]->str, reply.element[0]->len);
  auto string_at = [&reply](std::size_t i) -> const redisReply* {
    return i < reply.elements && reply.element[i]->type == REDIS_REPLY_STRING ? reply.element[i] : nullptr;
  };
  if (kind == "message" && reply.elements == 3) {
    const auto* channel = string_at(1);
    const auto* payload = string_at(2);
    if (!channel || !payload) return push;
    push.kind = PushMessage::Kind::message;
    push.channel = std::string_view(channel->str, channel->len);
    push.payload = std::string_view(payload->str, payload->len);
    return push;
  }
  if (kind == "subscribe" && reply.elements == 3) {
    const auto* channel = string_at(1);
    if (!channel) return push;
    push.kind = PushMessage::Kind::subscribed;
    push.channel = std::string_view(channel->str, channel->len);
    return push;
  }
  push.kind = PushMessage::Kind::other;  // unsubscribe, pong: nothing to do
  return push;
}

}  // namespace multinode::detail

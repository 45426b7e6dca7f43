// libFuzzer target for what the bridge reads from Redis (src/bridge/codec.hpp):
// hiredis's reply reader fed the input cut into reads (the first byte says where),
// every reply classified as a subscribed link does it, and every message payload's
// envelopes decoded. The same replies must come out whatever the cuts; a decoded
// message must be what the protocol allows (text UTF-8, JSON that serializes);
// nothing may crash, and the reader's buffer stays bounded.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target bridge_reply_fuzz
//   build/fuzz/fuzz/bridge_reply_fuzz fuzz/corpus/bridge_reply_fuzz
#include "bridge/codec.hpp"
#include "ipc/utf8.hpp"

#include <hiredis/hiredis.h>

#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace multinode::detail;

constexpr std::size_t max_message = 4096;

void describe(const redisReply& reply, std::string& out, int depth = 0) {
  out += std::to_string(reply.type);
  out += ':';
  switch (reply.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.append(reply.str, reply.len);
      break;
    case REDIS_REPLY_INTEGER:
      out += std::to_string(reply.integer);
      break;
    case REDIS_REPLY_ARRAY:
      for (std::size_t i = 0; i < reply.elements && depth < 16; ++i)
        describe(*reply.element[i], out, depth + 1);
      break;
    default:
      break;
  }
  out += ";";
}

// Every reply, described, and what the bridge makes of it; "error" at the end when the reader failed.
std::vector<std::string> run(const std::uint8_t* data, std::size_t size, std::size_t cut) {
  std::vector<std::string> events;
  ReplyReader reader(max_message + 1024);
  std::size_t at = 0;
  while (at < size) {
    const std::size_t n = std::min(cut, size - at);
    if (!reader.feed(reinterpret_cast<const char*>(data) + at, n)) break;
    at += n;
    while (auto reply = reader.next()) {
      std::string event;
      describe(*reply, event);
      const PushMessage push = classify_push(*reply);
      event += '|';
      event += std::to_string(static_cast<int>(push.kind));
      if (push.kind == PushMessage::Kind::message) {
        // One or more envelopes back to back, as Bridge::deliver() walks them.
        std::string_view rest = push.payload;
        while (!rest.empty()) {
          const std::size_t one = envelope_size(rest);
          if (one == 0 || one > rest.size()) {
            event += "|cut";
            break;
          }
          const Envelope envelope = decode_envelope(rest.substr(0, one), max_message, 16);
          rest.remove_prefix(one);
          event += '|';
          event += std::to_string(static_cast<int>(envelope.rejection));
          if (envelope.rejection == multinode::BridgeRejection::none) {
            const auto& message = *envelope.message;
            if (message.is_text() && !is_valid_utf8(message.bytes())) std::abort();
            if (message.is_json()) event += boost::json::serialize(message.json_value());
          }
        }
      }
      events.push_back(std::move(event));
    }
    if (reader.failed()) break;
  }
  if (reader.failed()) events.emplace_back("error");
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t cut = 1 + data[0] % 17;
  const auto whole = run(data + 1, size - 1, size);
  const auto pieces = run(data + 1, size - 1, cut);
  // Cut into reads, the replies are the same up to where either failed: a reader
  // fails on an oversized reply when its buffer passes the bound, which may come
  // at a different reply with different cuts.
  const std::size_t common = std::min(whole.size(), pieces.size());
  for (std::size_t i = 0; i < common; ++i) {
    if (whole[i] != pieces[i] && whole[i] != "error" && pieces[i] != "error") std::abort();
  }
  // The envelope decoder on the raw input as a payload.
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const Envelope envelope = decode_envelope(raw, max_message, 16);
  if (envelope.rejection == multinode::BridgeRejection::none && !envelope.message) std::abort();
  return 0;
}

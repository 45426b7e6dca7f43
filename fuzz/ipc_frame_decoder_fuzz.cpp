// libFuzzer target for the peer stream frame decoder. The first input byte
// chooses how the rest is cut into reads; the decoder must then behave exactly
// as when it gets the rest in one piece (same messages, same error, same bytes
// left over), never crash, and hand out only what the protocol allows: text
// that is UTF-8, JSON that serializes to JSON that parses again.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target ipc_frame_decoder_fuzz
//   build/fuzz/fuzz/ipc_frame_decoder_fuzz fuzz/corpus/ipc_frame_decoder_fuzz
#include "ipc/byte_queue.hpp"
#include "ipc/frame_codec.hpp"
#include "ipc/utf8.hpp"

#include <multinode/frame.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using multinode::Message;
using namespace multinode::detail;

struct Outcome {
  std::vector<std::string> events;  // kind and payload of each message or close frame, in order
  std::error_code error;
  std::size_t left_over = 0;
  bool operator==(const Outcome&) const = default;
};

struct Sink {
  Outcome& outcome;
  bool on_message(const Message& message) {
    std::string event(1, static_cast<char>('0' + static_cast<int>(message.kind())));
    if (message.is_json()) {
      std::string text = boost::json::serialize(message.json_value());
      // What was received must serialize to JSON that parses again (not always to
      // the same double: Boost.JSON parses numbers imprecisely by default).
      boost::json::error_code error;
      boost::json::parse(text, error);
      if (error) __builtin_trap();
      event += text;
    } else {
      if (message.is_text() && !is_valid_utf8(message.bytes())) __builtin_trap();
      event += message.bytes();
    }
    // A copy owns its bytes and equals the view.
    Message copy = message;
    if (!copy.owns_data() || copy.bytes() != message.bytes()) __builtin_trap();
    outcome.events.push_back(std::move(event));
    return true;
  }
  bool on_close_frame(std::uint16_t code, std::string_view reason) {
    if (!is_valid_utf8(reason)) __builtin_trap();
    outcome.events.push_back("close " + std::to_string(code) + " " + std::string(reason));
    return true;
  }
};

Outcome decode(std::string_view input, std::size_t piece) {
  multinode::FrameOptions options;
  options.max_frame_size = 64 * 1024;
  options.max_json_depth = 32;
  FrameDecoder decoder(options);
  ByteQueue in(256);
  Outcome outcome;
  Sink sink{outcome};
  for (std::size_t at = 0; at < input.size(); at += piece) {
    std::string_view read = input.substr(at, piece);
    in.append(read.data(), read.size());
    if ((outcome.error = decoder.decode(in, sink))) return outcome;
    // An incomplete frame never claims less than what is buffered.
    if (!in.empty() && decoder.bytes_needed() <= in.size()) __builtin_trap();
  }
  outcome.left_over = in.size();
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t piece = 1 + data[0] % 97;
  Outcome whole = decode(input, input.size() ? input.size() : 1);
  Outcome pieces = decode(input, piece);
  if (!(whole == pieces)) __builtin_trap();
  return 0;
}

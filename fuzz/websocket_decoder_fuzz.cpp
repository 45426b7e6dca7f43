// libFuzzer target for the WebSocket frame decoder (src/websocket/decoder.hpp).
// The first input byte chooses how the rest is cut into reads (its low 5 bits),
// fed the way a connection feeds it (what a read leaves of a cut frame is kept and
// the next read appended), and whether permessage-deflate was negotiated (bit 6:
// RSV1 frames are inflated; bit 7: with context takeover, else the inflater is
// reset after each message). The outcome must be the same as when the rest comes
// in one piece (same events, same failure), and the decoder may only hand out what
// the protocol allows: text that is UTF-8, messages within max_message_bytes (after
// inflating), valid close codes. Seeds with compressed frames:
// fuzz/websocket_decoder_seeds.py.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target websocket_decoder_fuzz
//   build/fuzz/fuzz/websocket_decoder_fuzz fuzz/corpus/websocket_decoder_fuzz
#include "websocket/decoder.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace multinode::websocket;
using namespace multinode::websocket::detail;

constexpr std::size_t max_message = 4096;

struct Outcome {
  std::vector<std::string> events;
  std::uint16_t failure = 0;
  bool operator==(const Outcome&) const = default;
};

struct Recorder final : DecoderSink {
  Outcome& outcome;
  explicit Recorder(Outcome& o) : outcome(o) {}
  void on_message(std::string_view data, Kind kind) override {
    if (data.size() > max_message) std::abort();
    if (kind == Kind::text && !is_utf8(data.data(), data.size())) std::abort();
    outcome.events.push_back(std::string(1, kind == Kind::text ? 't' : 'b').append(data));
  }
  void on_ping(std::string_view payload) override {
    if (payload.size() > 125) std::abort();
    outcome.events.push_back(std::string(1, 'i').append(payload));
  }
  void on_pong(std::string_view payload) override {
    if (payload.size() > 125) std::abort();
    outcome.events.push_back(std::string(1, 'o').append(payload));
  }
  void on_close_frame(std::uint16_t code, std::string_view reason) override {
    if (code != close_code::no_status && !is_valid_close_code(code)) std::abort();
    if (!is_utf8(reason.data(), reason.size())) std::abort();
    outcome.events.push_back(std::string(1, 'c').append(std::to_string(code)).append(reason));
  }
};

Outcome run(std::string_view input, std::size_t piece, std::uint8_t flags) {
  Outcome outcome;
  Recorder recorder(outcome);
  Decoder decoder(max_message);
  if ((flags & 0x40) != 0) decoder.enable_deflate(std::make_unique<Inflater>(15, (flags & 0x80) == 0));
  std::string pending;
  for (std::size_t at = 0; at < input.size(); at += piece) {
    pending.append(input.substr(at, piece));
    const std::size_t used = decoder.decode(pending.data(), pending.size(), recorder);
    if (used > pending.size()) std::abort();
    pending.erase(0, used);
    if (decoder.failure() != 0 || decoder.closed()) break;
  }
  outcome.failure = decoder.failure();
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 32;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = run(input, input.size() + 1, data[0]);
  const Outcome cut = run(input, piece, data[0]);
  if (!(whole == cut)) std::abort();
  return 0;
}

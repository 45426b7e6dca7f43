// libFuzzer target for the permessage-deflate negotiation (src/websocket/deflate.hpp):
// any Sec-WebSocket-Extensions value, with and without our own limits. An agreement
// must be within RFC 7692's ranges, and the response it answers with, offered back,
// must be accepted with the same parameters (it is itself a valid offer).
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target websocket_extensions_fuzz
//   build/fuzz/fuzz/websocket_extensions_fuzz fuzz/corpus/websocket_extensions_fuzz
#include "websocket/deflate.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace multinode::websocket;
using namespace multinode::websocket::detail;

void check(std::string_view offers, const Options& options) {
  const auto agreed = negotiate_deflate(offers, options);
  if (!agreed) return;
  const DeflateParameters& p = agreed->parameters;
  if (p.server_max_window_bits < 9 || p.server_max_window_bits > 15) std::abort();
  if (p.client_max_window_bits < 8 || p.client_max_window_bits > 15) std::abort();
  if (p.server_max_window_bits > options.deflate_window_bits && options.deflate_window_bits >= 9)
    std::abort();
  if (!options.deflate_context_takeover && !(p.server_no_context_takeover && p.client_no_context_takeover))
    std::abort();
  const auto again = negotiate_deflate(agreed->response, options);
  if (!again || again->response != agreed->response) std::abort();
  const DeflateParameters& q = again->parameters;
  if (q.server_no_context_takeover != p.server_no_context_takeover ||
      q.client_no_context_takeover != p.client_no_context_takeover ||
      q.server_max_window_bits != p.server_max_window_bits ||
      q.client_max_window_bits != p.client_max_window_bits)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view offers(reinterpret_cast<const char*>(data), size);
  Options defaults;
  defaults.permessage_deflate = true;
  check(offers, defaults);
  Options small = defaults;
  small.deflate_window_bits = 10;
  small.deflate_context_takeover = true;
  check(offers, small);
  return 0;
}

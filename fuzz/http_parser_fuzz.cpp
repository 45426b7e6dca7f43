// libFuzzer target for the HTTP request parser, through RequestReader as a
// connection drives it. Three properties, each a crash when broken:
//   - no memory error or undefined behaviour on any input (ASan, UBSan);
//   - the outcome does not depend on how the bytes arrive (cut at two offsets
//     chosen by the input, and byte by byte for short inputs): the same requests,
//     refused or not alike, for the same reason;
//   - every disagreement with llhttp is one of the deliberate differences of
//     docs/http.md (explain_difference in tests/unit/http_llhttp_reference.hpp).
// The first byte picks the options: defaults, small limits, or streamed bodies.
//
//   build/fuzz/fuzz/http_parser_fuzz fuzz/corpus/http_parser_fuzz
#include "../tests/unit/http_llhttp_reference.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

using namespace multinode::http;
using namespace multinode::http::test;

Options options_for(std::uint8_t selector) {
  Options options;
  switch (selector % 3) {
    case 0:
      break;
    case 1:
      options.max_header_bytes = 128;
      options.max_header_count = 4;
      options.max_target_length = 32;
      options.max_body_bytes = 64;
      options.max_chunk_extension_bytes = 8;
      options.read_buffer_size = 64;
      break;
    default:
      options.stream_body = true;
      options.read_buffer_size = 64;
      break;
  }
  return options;
}

[[noreturn]] void fail(const char* what, std::string_view input, const ParseOutcome& a,
                       const ParseOutcome& b) {
  std::fprintf(stderr, "%s\n--- input (%zu bytes)\n%s\n--- outcome\n%s\n--- versus\n%s\n", what, input.size(),
               std::string(input).c_str(), describe(a).c_str(), describe(b).c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const Options options = options_for(data[0]);
  const std::size_t cut_a = data[1];
  const std::size_t cut_b = data[2] * 7u;
  const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

  const ParseOutcome whole = parse_whole(options, input);
  const ParseOutcome split =
      parse_pieces(options, input, {cut_a % (input.size() + 1), cut_b % (input.size() + 1)});
  // The parser decides every refusal in byte order (docs/http.md): the outcome, the
  // reason included, is the same however the bytes arrive.
  if (split != whole) fail("the outcome depends on where the input is cut", input, whole, split);
  if (input.size() <= 512) {
    const ParseOutcome bytewise = parse_bytewise(options, input);
    if (bytewise != whole) fail("the outcome differs when fed byte by byte", input, whole, bytewise);
  }

  if (data[0] % 3 == 0) {
    const std::string label = explain_difference(options, input, whole, llhttp_parse(input));
    if (label.starts_with("UNDOCUMENTED")) {
      std::fprintf(stderr, "%s\n", label.c_str());
      fail("a disagreement with llhttp that docs/http.md does not list", input, whole, whole);
    }
  }
  return 0;
}

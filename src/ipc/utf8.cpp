#include "ipc/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace multinode::detail {

bool is_valid_utf8(const char* data, std::size_t size) noexcept {
  auto p = reinterpret_cast<const unsigned char*>(data);
  const unsigned char* end = p + size;
  constexpr std::uint64_t high_bits = 0x8080808080808080ULL;
  while (p < end) {
    // Most text is ASCII: check 16 bytes per step while no byte has its high bit set.
    if (end - p >= 16) {
      std::uint64_t a, b;
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + 8, 8);
      if (((a | b) & high_bits) == 0) {
        p += 16;
        continue;
      }
    }
    unsigned char lead = *p;
    if (lead < 0x80) {
      ++p;
      continue;
    }
    auto is_continuation = [](unsigned char c) { return (c & 0xC0) == 0x80; };
    if (lead < 0xC2) return false;  // a continuation byte, or an overlong two-byte form
    if (lead < 0xE0) {
      if (end - p < 2 || !is_continuation(p[1])) return false;
      p += 2;
      continue;
    }
    if (lead < 0xF0) {
      if (end - p < 3) return false;
      unsigned char second = p[1];
      if (lead == 0xE0 && second < 0xA0) return false;  // overlong
      if (lead == 0xED && second > 0x9F) return false;  // UTF-16 surrogates
      if (!is_continuation(second) || !is_continuation(p[2])) return false;
      p += 3;
      continue;
    }
    if (lead < 0xF5) {
      if (end - p < 4) return false;
      unsigned char second = p[1];
      if (lead == 0xF0 && second < 0x90) return false;  // overlong
      if (lead == 0xF4 && second > 0x8F) return false;  // above U+10FFFF
      if (!is_continuation(second) || !is_continuation(p[2]) || !is_continuation(p[3])) return false;
      p += 4;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace multinode::detail

// UTF-8 validation (RFC 3629) that may stop anywhere, inside a code point too: a
// text message arrives in fragments split at any byte, and each fragment is
// checked as it comes (a bad byte fails the connection at once, not at the end).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace multinode::websocket::detail {

class Utf8Validator {
 public:
  // False at the first byte that cannot be part of well-formed UTF-8
  // (overlong forms, surrogates, past U+10FFFF, stray continuation bytes).
  bool feed(const unsigned char* data, std::size_t size) noexcept {
    std::size_t i = 0;
    while (i < size) {
      if (need_ == 0) {
        // ASCII runs eight bytes at a time: the common case of chat text and JSON.
        while (i + 8 <= size) {
          std::uint64_t word;
          std::memcpy(&word, data + i, 8);
          if ((word & 0x8080808080808080ULL) != 0) break;
          i += 8;
        }
        if (i == size) break;
        const unsigned char byte = data[i++];
        if (byte < 0x80) continue;
        if (!start(byte)) return false;
        continue;
      }
      const unsigned char byte = data[i++];
      if (byte < lower_ || byte > upper_) return false;
      lower_ = 0x80;
      upper_ = 0xBF;
      --need_;
    }
    return true;
  }
  // No code point left open.
  bool complete() const noexcept { return need_ == 0; }
  void reset() noexcept { need_ = 0; }

 private:
  // A lead byte: how many continuation bytes follow, and the range of the first.
  bool start(unsigned char byte) noexcept {
    lower_ = 0x80;
    upper_ = 0xBF;
    if (byte >= 0xC2 && byte <= 0xDF) {
      need_ = 1;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      need_ = 2;
      if (byte == 0xE0) lower_ = 0xA0;  // overlong below U+0800
      if (byte == 0xED) upper_ = 0x9F;  // U+D800..U+DFFF are surrogates
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      need_ = 3;
      if (byte == 0xF0) lower_ = 0x90;  // overlong below U+10000
      if (byte == 0xF4) upper_ = 0x8F;  // past U+10FFFF
    } else {
      return false;  // 0x80..0xC1 (continuation, overlong 2-byte) and 0xF5..0xFF
    }
    return true;
  }

  std::uint8_t need_ = 0;
  unsigned char lower_ = 0x80;
  unsigned char upper_ = 0xBF;
};

inline bool is_utf8(const void* data, std::size_t size) noexcept {
  Utf8Validator validator;
  return validator.feed(static_cast<const unsigned char*>(data), size) && validator.complete();
}

}  // namespace multinode::websocket::detail

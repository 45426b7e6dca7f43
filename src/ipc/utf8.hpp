// UTF-8 validation for text frames (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <string_view>

namespace multinode::detail {

bool is_valid_utf8(const char* data, std::size_t size) noexcept;
inline bool is_valid_utf8(std::string_view text) noexcept {
  return is_valid_utf8(text.data(), text.size());
}

}  // namespace multinode::detail

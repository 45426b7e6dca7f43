// The character classes and small grammar pieces of HTTP/1.1 (RFC 9110, RFC 9112),
// ASCII only, in one place: the request parser, the response's header checks and
// the tests all use these.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace multinode::http::detail {

// One table, one bit per class, so that a scan loop does one load per byte.
enum char_class : std::uint8_t {
  // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT /
  // ALPHA
  token_class = 1,
  // What a field value may hold: VCHAR, obs-text, SP and HTAB (no other control byte).
  field_value_class = 2,
  // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
  qdtext_class = 4,
  // What a quoted-pair may escape: HTAB / SP / VCHAR / obs-text
  quoted_pair_class = 8,
  // Visible ASCII, 0x21-0x7E: what a request-target may hold.
  visible_class = 16,
  hex_class = 32,
};

inline constexpr std::array<std::uint8_t, 256> char_classes = [] {
  std::array<std::uint8_t, 256> table{};
  auto add = [&table](int c, std::uint8_t bits) { table[static_cast<std::size_t>(c)] |= bits; };
  for (int c = '0'; c <= '9'; ++c) add(c, token_class | hex_class);
  for (int c = 'a'; c <= 'z'; ++c) add(c, token_class);
  for (int c = 'A'; c <= 'Z'; ++c) add(c, token_class);
  for (int c = 'a'; c <= 'f'; ++c) add(c, hex_class);
  for (int c = 'A'; c <= 'F'; ++c) add(c, hex_class);
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) add(static_cast<unsigned char>(c), token_class);
  for (int c = 0x21; c <= 0x7E; ++c)
    add(c, field_value_class | quoted_pair_class | visible_class | qdtext_class);
  for (int c = 0x80; c <= 0xFF; ++c) add(c, field_value_class | quoted_pair_class | qdtext_class);
  for (const unsigned char c : {' ', '\t'}) add(c, field_value_class | quoted_pair_class | qdtext_class);
  table['"'] &= static_cast<std::uint8_t>(~qdtext_class);
  table['\\'] &= static_cast<std::uint8_t>(~qdtext_class);
  return table;
}();

inline bool has_class(char c, std::uint8_t bits) noexcept {
  return (char_classes[static_cast<unsigned char>(c)] & bits) != 0;
}

inline bool is_token_char(char c) noexcept {
  return has_class(c, token_class);
}

inline bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_token_char(c)) return false;
  return true;
}

inline bool is_visible_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (!has_class(c, visible_class)) return false;
  return true;
}

inline bool is_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// A plain decimal number (digits only) that fits in 64 bits.
inline bool parse_decimal(std::string_view s, std::uint64_t& value) noexcept {
  if (!is_digits(s)) return false;
  std::uint64_t result = 0;
  for (char c : s) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  value = result;
  return true;
}

inline unsigned hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
  return static_cast<unsigned>((c | 0x20) - 'a' + 10);
}

inline char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

inline std::string_view trim_whitespace(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The comma-separated lists of RFC 9110 5.6.1 (Connection, Transfer-Encoding, ...):
// calls element(view) for each element, optional whitespace trimmed, empty ones
// included (what an empty element means is the caller's business). Stops when
// element returns false, and then returns false.
template <class Element>
bool for_each_list_element(std::string_view list, Element&& element) {
  std::size_t pos = 0;
  for (;;) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    if (!element(trim_whitespace(list.substr(pos, comma - pos)))) return false;
    if (comma == list.size()) return true;
    pos = comma + 1;
  }
}

// The Host rule (RFC 9110 7.2, RFC 3986 3.2.2): uri-host [ ":" port ], where
// uri-host is an IP literal in brackets or a reg-name (which covers IPv4 addresses):
// unreserved characters, sub-delims and %XX escapes; port is digits. Empty is a
// valid Host (a target without an authority). No userinfo: RFC 9110 4.2.4 has a
// recipient treat `user@` in an http(s) URI as an error. The same rule checks the
// Host field and the authority of an absolute-form or authority-form target.
inline bool is_host(std::string_view host) noexcept {
  auto hex = [](char c) { return has_class(c, hex_class); };
  auto reg_name_char = [](char c) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
  };
  std::size_t i = 0;
  if (!host.empty() && host.front() == '[') {
    // IP-literal = "[" ( IPv6address / IPvFuture ) "]": hex digits, colons and dots
    // (an IPv6 address, perhaps ending in IPv4), or "v" HEXDIG "." and the rest.
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    const std::string_view literal = host.substr(1, close - 1);
    if (literal.front() == 'v' || literal.front() == 'V') {
      std::size_t j = 1;
      while (j < literal.size() && hex(literal[j])) ++j;
      if (j == 1 || j + 1 >= literal.size() || literal[j] != '.') return false;
      for (++j; j < literal.size(); ++j)
        if (!reg_name_char(literal[j]) && literal[j] != ':') return false;
    } else {
      if (literal.find(':') == std::string_view::npos) return false;
      for (char c : literal)
        if (!hex(c) && c != ':' && c != '.') return false;
    }
    i = close + 1;
  } else {
    for (; i < host.size() && host[i] != ':'; ++i) {
      if (host[i] == '%') {
        if (i + 2 >= host.size() || !hex(host[i + 1]) || !hex(host[i + 2])) return false;
        i += 2;
      } else if (!reg_name_char(host[i])) {
        return false;
      }
    }
  }
  if (i == host.size()) return true;
  // ":" port, port = *DIGIT
  if (host[i] != ':') return false;
  for (++i; i < host.size(); ++i)
    if (host[i] < '0' || host[i] > '9') return false;
  return true;
}

// RFC 9112 3.2: origin-form ("/path?query"), absolute-form ("scheme://..."),
// asterisk-form ("*") or, for CONNECT only, authority-form ("host:port").
inline bool is_request_target_form(std::string_view method, std::string_view target) noexcept {
  // No form has a fragment: clients keep "#..." to themselves.
  if (target.empty() || target.find('#') != std::string_view::npos) return false;
  if (target.front() == '/') return true;
  if (target == "*") return true;
  if (method == "CONNECT") return is_host(target);
  // scheme "://" authority: RFC 3986 lets a scheme hold digits, '+', '-' and '.'
  // after its first letter; like llhttp we take letters only (http, https, ...),
  // and an HTTP absolute-form always names an authority.
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(target.front())) return false;
  for (std::size_t i = 1; i < target.size(); ++i) {
    const char c = target[i];
    if (c == ':') {
      if (!target.substr(i).starts_with("://")) return false;
      const std::string_view rest = target.substr(i + 3);
      return is_host(rest.substr(0, rest.find_first_of("/?#")));
    }
    if (!alpha(c)) return false;
  }
  return false;
}

}  // namespace multinode::http::detail

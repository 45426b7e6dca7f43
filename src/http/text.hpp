// Character classes and comparisons of HTTP/1.1 (RFC 9110, RFC 9112), ASCII only.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace multinode::http::detail {

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
inline constexpr std::array<bool, 256> token_chars = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

inline bool is_token_char(char c) noexcept { return token_chars[static_cast<unsigned char>(c)]; }

inline bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_token_char(c)) return false;
  return true;
}

// Visible ASCII, 0x21-0x7E: what a request-target may hold.
inline bool is_visible_ascii(std::string_view s) noexcept {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) return false;
  }
  return true;
}

inline bool is_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

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

// The request line so far holds a well-formed version other than 1.0 and 1.1,
// which deserves 505 rather than 400. Like Beast, it looks at the eight bytes after
// the target, whatever follows them.
inline bool is_unsupported_version(std::string_view request_line) noexcept {
  const std::size_t first_space = request_line.find(' ');
  if (first_space == std::string_view::npos) return false;
  const std::size_t second_space = request_line.find(' ', first_space + 1);
  if (second_space == std::string_view::npos) return false;
  const std::string_view version = request_line.substr(second_space + 1, 8);
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.') return false;
  const char major = version[5];
  const char minor = version[7];
  if (major < '0' || major > '9' || minor < '0' || minor > '9') return false;
  return !(major == '1' && (minor == '0' || minor == '1'));
}

// RFC 3986 authority characters: unreserved, pct-encoded, sub-delims, ':' and the
// brackets of an IP literal. No '@': RFC 9110 4.2.4 has a recipient treat userinfo
// in an http(s) URI as an error.
inline bool is_authority(std::string_view authority) noexcept {
  for (char c : authority) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("-._~%!$&'()*+,;=:[]").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// RFC 9112 3.2: origin-form ("/path?query"), absolute-form ("scheme://..."),
// asterisk-form ("*") or, for CONNECT only, authority-form ("host:port").
inline bool is_request_target_form(std::string_view method, std::string_view target) noexcept {
  // No form has a fragment: clients keep "#..." to themselves.
  if (target.empty() || target.find('#') != std::string_view::npos) return false;
  if (target.front() == '/') return true;
  if (target == "*") return true;
  if (method == "CONNECT") return is_authority(target);
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
      return is_authority(rest.substr(0, rest.find_first_of("/?#")));
    }
    if (!alpha(c)) return false;
  }
  return false;
}

}  // namespace multinode::http::detail

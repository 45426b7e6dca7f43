// llhttp (Node's HTTP parser, from Debian's node-llhttp) as a reference: parses the
// same bytes into the same ParseOutcome shape as http_parse_harness.hpp, so that
// differential tests and the fuzz target can compare the two parsers request by
// request. Built only into tests and fuzz targets (CMake target llhttp_reference).
#pragma once

#include "http/text.hpp"
#include "http_parse_harness.hpp"

#include <llhttp.h>

#include <algorithm>
#include <string>
#include <string_view>

namespace multinode::http::test {

struct ReferenceOutcome {
  std::vector<ParsedRequest> requests;
  bool failed = false;   // llhttp refused the request after the last good one
  std::string error;     // llhttp's error name and reason
  bool partial = false;  // input ended inside a request
  bool upgrade = false;  // llhttp stopped at an Upgrade or CONNECT request
};

namespace reference_detail {

struct State {
  ReferenceOutcome outcome;
  ParsedRequest current;
  std::string field;
  std::string value;
  bool in_value = false;
  bool in_trailers = false;
  bool in_message = false;
};

inline State& state(llhttp_t* parser) {
  return *static_cast<State*>(parser->data);
}

inline void flush_field(State& s) {
  if (!s.in_value && s.field.empty()) return;
  // llhttp hands over the value with trailing whitespace; RFC 9110 5.5 trims it.
  while (!s.value.empty() && (s.value.back() == ' ' || s.value.back() == '\t')) s.value.pop_back();
  (s.in_trailers ? s.current.trailers : s.current.headers)
      .emplace_back(std::move(s.field), std::move(s.value));
  s.field.clear();
  s.value.clear();
  s.in_value = false;
}

inline int on_message_begin(llhttp_t* p) {
  State& s = state(p);
  s.current = ParsedRequest{};
  s.in_trailers = false;
  s.in_value = false;
  s.field.clear();
  s.value.clear();
  s.in_message = true;
  return 0;
}
inline int on_method(llhttp_t* p, const char* at, std::size_t n) {
  state(p).current.method.append(at, n);
  return 0;
}
inline int on_url(llhttp_t* p, const char* at, std::size_t n) {
  state(p).current.target.append(at, n);
  return 0;
}
inline int on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  State& s = state(p);
  if (s.in_value) flush_field(s);
  s.field.append(at, n);
  return 0;
}
inline int on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  State& s = state(p);
  s.in_value = true;
  s.value.append(at, n);
  return 0;
}
inline int on_headers_complete(llhttp_t* p) {
  State& s = state(p);
  flush_field(s);
  s.current.version = p->http_major * 10 + p->http_minor;
  s.current.chunked = (p->flags & F_CHUNKED) != 0;
  s.in_trailers = true;  // any further fields are trailers
  return 0;
}
inline int on_body(llhttp_t* p, const char* at, std::size_t n) {
  state(p).current.body.append(at, n);
  return 0;
}
inline int on_message_complete(llhttp_t* p) {
  State& s = state(p);
  flush_field(s);
  s.current.keep_alive = llhttp_should_keep_alive(p) != 0;
  s.outcome.requests.push_back(s.current);
  s.in_message = false;
  // Like a connection, stop after a request that does not keep the connection.
  return s.current.keep_alive ? 0 : HPE_PAUSED;
}

inline const llhttp_settings_t& settings() {
  static const llhttp_settings_t instance = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = on_message_begin;
    s.on_method = on_method;
    s.on_url = on_url;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
  }();
  return instance;
}

}  // namespace reference_detail

// Parses input with llhttp, the way Node's HTTP server sets it up (request mode,
// no lenient flags).
inline ReferenceOutcome llhttp_parse(std::string_view input) {
  reference_detail::State state;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &reference_detail::settings());
  parser.data = &state;
  const llhttp_errno_t result = llhttp_execute(&parser, input.data(), input.size());
  if (result == HPE_PAUSED_UPGRADE) {
    state.outcome.upgrade = true;
  } else if (result != HPE_OK && result != HPE_PAUSED) {
    state.outcome.failed = true;
    state.outcome.error = std::string(llhttp_errno_name(result)) + ": " + llhttp_get_error_reason(&parser);
  } else if (result == HPE_OK && state.in_message) {
    state.outcome.partial = true;
  }
  return state.outcome;
}

// --- comparing the two -------------------------------------------------------

inline bool same_request(const ParsedRequest& a, const ParsedRequest& b) {
  return a.method == b.method && a.target == b.target && a.version == b.version && a.headers == b.headers &&
         a.trailers == b.trailers && a.body == b.body && a.keep_alive == b.keep_alive &&
         a.chunked == b.chunked;
}

// Each deliberate difference with llhttp 8.1, as documented in docs/http.md
// ("Differences with llhttp"). explain_difference() returns one of these labels,
// an empty string when the parsers agree, or a text starting with "UNDOCUMENTED".
namespace difference {
inline constexpr const char* stricter = "stricter: we refuse what llhttp accepts";
inline constexpr const char* refused_at_head_end = "stricter, later: we refuse once the head is complete";
inline constexpr const char* extension_method = "extension methods: we accept any token as a method";
inline constexpr const char* tab_in_connection =
    "a tab around a Connection or Proxy-Connection token: we trim it (RFC 9110 5.5)";
inline constexpr const char* upgrade = "Upgrade and CONNECT: we answer them as ordinary requests";
inline constexpr const char* chunk_extensions =
    "several chunk extensions after one with a value: we accept them (RFC 9112 7.1.1)";
inline constexpr const char* higher_minor_version =
    "HTTP/1.2 to HTTP/1.9: we process them as HTTP/1.1 (RFC 9110 2.5)";
inline constexpr const char* quoted_pair_in_chunk_extension =
    "a quoted-pair in a quoted chunk extension value: we accept it (RFC 9112 7.1.1)";
}  // namespace difference

// True when a chunk-size line of input (hex digits, then ';') has its extensions,
// from the ';' on, matching `extensions(line, semicolon)`.
template <typename Extensions>
bool any_chunk_extension_line(std::string_view input, Extensions&& extensions) {
  std::size_t start = 0;
  while (start < input.size()) {
    std::size_t end = input.find("\r\n", start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(start, end - start);
    const std::size_t digits = line.find_first_not_of("0123456789abcdefABCDEF");
    if (digits != 0 && digits != std::string_view::npos && line[digits] == ';' && extensions(line, digits))
      return true;
    start = end + 2;
  }
  return false;
}

// Evidence for difference::chunk_extensions: a chunk-size line where an extension
// with a value is followed by another extension (llhttp 8.1 then reports an
// "invalid character in chunk size").
inline bool has_extension_after_valued_extension(std::string_view input) {
  return any_chunk_extension_line(input, [](std::string_view line, std::size_t semicolon) {
    const std::size_t equals = line.find('=', semicolon);
    return equals != std::string_view::npos && line.find(';', equals) != std::string_view::npos;
  });
}

// Evidence for difference::quoted_pair_in_chunk_extension: a chunk-size line with a
// backslash after the opening quote of an extension value (llhttp 8.1 then reports
// an "invalid character in chunk extensions quoted value").
inline bool has_quoted_pair_in_chunk_extension(std::string_view input) {
  return any_chunk_extension_line(input, [](std::string_view line, std::size_t semicolon) {
    const std::size_t quote = line.find("=\"", semicolon);
    return quote != std::string_view::npos && line.find('\\', quote) != std::string_view::npos;
  });
}

// llhttp refused what we accept for one of the chunk extensions RFC 9112 allows.
inline const char* chunk_extension_difference(std::string_view input, const ReferenceOutcome& theirs) {
  if (theirs.error.starts_with("HPE_INVALID_CHUNK_SIZE") && has_extension_after_valued_extension(input))
    return difference::chunk_extensions;
  if (theirs.error.starts_with("HPE_STRICT") &&
      theirs.error.find("chunk extensions quoted value") != std::string::npos &&
      has_quoted_pair_in_chunk_extension(input))
    return difference::quoted_pair_in_chunk_extension;
  return nullptr;
}

// Evidence for difference::higher_minor_version: llhttp refused a version and a
// request line ends in HTTP/1.2 to HTTP/1.9.
inline bool higher_minor_version_refused(std::string_view input, const ReferenceOutcome& theirs) {
  if (!theirs.error.starts_with("HPE_INVALID_VERSION")) return false;
  for (std::size_t at = input.find(" HTTP/1."); at != std::string_view::npos;
       at = input.find(" HTTP/1.", at + 1)) {
    const std::string_view rest = input.substr(at + 8);
    if (!rest.empty() && rest[0] >= '2' && rest[0] <= '9' && (rest.size() == 1 || rest[1] == '\r'))
      return true;
  }
  return false;
}

inline std::string explain_difference(const Options& options, std::string_view input,
                                      const ParseOutcome& ours, const ReferenceOutcome& theirs) {
  const std::size_t common = std::min(ours.requests.size(), theirs.requests.size());
  std::size_t k = 0;
  while (k < common && same_request(ours.requests[k], theirs.requests[k])) ++k;
  if (theirs.upgrade && k == theirs.requests.size()) {
    // llhttp hands the connection over after an upgrade request; we carry on.
    return k == ours.requests.size() && !ours.failure && !ours.partial ? "" : difference::upgrade;
  }
  if (k < common) {
    const ParsedRequest& a = ours.requests[k];
    const ParsedRequest& b = theirs.requests[k];
    ParsedRequest a_without_persistence = a;
    a_without_persistence.keep_alive = b.keep_alive;
    // llhttp 8 does not see a Connection (or Proxy-Connection) token followed by a tab.
    if (same_request(a_without_persistence, b) && input.find('\t') != std::string_view::npos) {
      for (const auto& [name, value] : a.headers)
        if (detail::iequals(name, "connection") || detail::iequals(name, "proxy-connection"))
          return difference::tab_in_connection;
    }
    return "UNDOCUMENTED: request " + std::to_string(k) + " parsed differently";
  }
  // Every request both parsed agrees; what happened to the next one?
  const bool ours_done = ours.requests.size() == k;
  const bool theirs_done = theirs.requests.size() == k;
  if (ours_done && theirs_done) {
    if (ours.failure.has_value() == theirs.failed) return "";
    if (ours.failure) return difference::stricter;  // llhttp accepted or waits for more
    if (ours.partial) {
      // llhttp refused what we still wait for: complete every head and see.
      std::string completed(input);
      completed += "\r\n\r\n";
      const ParseOutcome later = parse_whole(options, completed);
      if (later.requests.size() <= k) return difference::refused_at_head_end;
      if (theirs.error.starts_with("HPE_INVALID_METHOD")) return difference::extension_method;
      if (higher_minor_version_refused(input, theirs)) return difference::higher_minor_version;
      if (const char* label = chunk_extension_difference(input, theirs)) return label;
      return "UNDOCUMENTED: llhttp refused (" + theirs.error + ") a request we accept once complete";
    }
    return "UNDOCUMENTED: llhttp refused (" + theirs.error + ") where we were done";
  }
  if (ours_done) {
    // llhttp accepted request k.
    if (ours.failure) return difference::stricter;
    std::string completed(input);
    completed += "\r\n\r\n";
    const ParseOutcome later = parse_whole(options, completed);
    if (later.requests.size() <= k && later.failure) return difference::refused_at_head_end;
    return "UNDOCUMENTED: llhttp accepted a request we do not";
  }
  // We accepted request k, llhttp did not.
  if (theirs.error.starts_with("HPE_INVALID_METHOD")) return difference::extension_method;
  if (higher_minor_version_refused(input, theirs)) return difference::higher_minor_version;
  if (const char* label = chunk_extension_difference(input, theirs)) return label;
  return "UNDOCUMENTED: we accept a request llhttp " +
         (theirs.failed ? "refuses (" + theirs.error + ")" : std::string("does not see"));
}

}  // namespace multinode::http::test

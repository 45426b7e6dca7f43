#include "http/parser.hpp"

#include "http/text.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

namespace multinode::http::detail {

namespace beast_http = boost::beast::http;
using boost::beast::error_code;

namespace {

// Room for the chunk-size line around its extensions: size digits, spaces, CRLF.
constexpr std::size_t chunk_line_slack = 64;
// Below this much free room the buffer is compacted, then grown.
constexpr std::size_t min_read_room = 2048;

std::size_t chunk_line_limit(const Options& options) noexcept {
  return options.max_chunk_extension_bytes + chunk_line_slack;
}

// Why a chunk-size line longer than the limit is refused, from its first bytes
// only, so that the answer is the same however much of the line has arrived.
error chunk_line_overflow(const Options& options, std::string_view line) noexcept {
  return line.substr(0, chunk_line_limit(options) + 1).find(';') != std::string_view::npos
             ? error::chunk_extension_too_long
             : error::bad_chunk;
}


// The chunk-size line holds at least one hex digit, all of them '0'.
bool is_last_chunk_line(std::string_view line) noexcept {
  const std::size_t digits = std::min(line.find_first_not_of("0123456789abcdefABCDEF"), line.size());
  return digits > 0 && line.substr(0, digits).find_first_not_of('0') == std::string_view::npos;
}

bool is_data_chunk_line(std::string_view line) noexcept {
  const std::size_t digits = std::min(line.find_first_not_of("0123456789abcdefABCDEF"), line.size());
  return digits > 0 && line.substr(0, digits).find_first_not_of('0') != std::string_view::npos;
}

}  // namespace

// ---------------------------------------------------------------------------
// RequestParser

RequestParser::RequestParser(const Options& options, Request& request, bool stream_body)
    : options_(options), request_(request), stream_body_(stream_body) {
  // RequestReader hands over whole heads within max_header_bytes; Beast's own limit
  // (which counts the request line and the fields apart) is only a backstop.
  header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options.max_header_bytes + 4, std::numeric_limits<std::uint32_t>::max())));
  body_limit(options.max_body_bytes);
  // The first put() stops after the head so that the connection can send 100 Continue
  // or start a streaming handler; RequestReader turns eager on after that.
  eager(false);
}

std::size_t RequestParser::parse(char* data, std::size_t size, error_code& ec) {
  input_ = data;
  input_end_ = data + size;
  return put(boost::asio::const_buffer(data, size), ec);
}

void RequestParser::fail(error_code& ec, error reason) noexcept {
  policy_error_ = reason;
  // Any Beast error stops the parse; which one does not matter, policy_error_ says why.
  ec = beast_http::error::bad_value;
}

void RequestParser::on_request_impl(beast_http::verb, boost::beast::string_view method_string,
                                    boost::beast::string_view beast_target, int version, error_code& ec) {
  const std::string_view target(beast_target.data(), beast_target.size());
  request_line_done_ = true;
  request_.method_ = std::string_view(method_string.data(), method_string.size());
  request_.target_ = target;
  request_.version_ = version;
  // RequestReader checked the request line already (length, characters, form).
  (void)ec;
}

void RequestParser::on_response_impl(int, boost::beast::string_view, int, error_code& ec) {
  // A request parser never sees a status line; keep Beast's contract anyway.
  ec = beast_http::error::bad_version;
}

void RequestParser::add_transfer_codings(std::string_view value) noexcept {
  // transfer-coding list: elements separated by commas with optional whitespace.
  // Parameters are refused: neither `chunked` nor anything we would accept before
  // it takes one.
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view element = trim_whitespace(value.substr(pos, comma - pos));
    // Empty list elements are legal list syntax, but llhttp and others refuse
    // them here; refusing is the side that cannot be smuggled through.
    if (element.empty()) {
      transfer_encoding_syntax_ok_ = false;
    } else {
      if (!is_token(element)) {
        transfer_encoding_syntax_ok_ = false;
      } else if (iequals(element, "chunked")) {
        ++chunked_codings_;
        last_coding_chunked_ = true;
      } else {
        ++other_codings_;
        last_coding_chunked_ = false;
      }
    }
    pos = comma + 1;
  }
}

bool RequestParser::has_tab_around(const char* name_end, std::string_view value) const noexcept {
  // From the colon to the value, and from the value to the end of the line.
  for (const char* p = name_end; p < value.data(); ++p)
    if (*p == '\t') return true;
  for (const char* p = value.data() + value.size(); p < input_end_ && *p != '\r'; ++p)
    if (*p == '\t') return true;
  return false;
}

void RequestParser::on_field_impl(beast_http::field name, boost::beast::string_view beast_name,
                                  boost::beast::string_view beast_value, error_code& ec) {
  const std::string_view name_string(beast_name.data(), beast_name.size());
  const std::string_view value(beast_value.data(), beast_value.size());
  // Obsolete line folding: Beast joins folded lines into a buffer of its own (so the
  // value is not in our input), or, when the first line is empty, gives the value
  // from the continuation line (so a CR lies between name and value).
  const bool value_in_input = value.data() >= input_ && value.data() + value.size() <= input_end_;
  if (!value_in_input) return fail(ec, error::obs_fold);
  const char* name_end = name_string.data() + name_string.size();
  if (value.data() > name_end && std::memchr(name_end, '\r', static_cast<std::size_t>(value.data() - name_end)))
    return fail(ec, error::obs_fold);

  if (in_trailers_) {
    if (++trailer_count_ > options_.max_header_count) return fail(ec, error::trailers_too_large);
    if (static_cast<std::size_t>(value.data() + value.size() - trailer_start_) > options_.max_header_bytes)
      return fail(ec, error::trailers_too_large);
    request_.fields_.push_back({name_string, value});
    return;
  }

  if (request_.fields_.size() >= options_.max_header_count) return fail(ec, error::too_many_headers);
  // Beast's own header_limit counts the request line and each batch of fields
  // separately; this counts the whole head.
  if (static_cast<std::size_t>(value.data() + value.size() - request_.method_.data()) > options_.max_header_bytes)
    return fail(ec, error::header_too_large);

  switch (name) {
    case beast_http::field::content_length:
    case beast_http::field::transfer_encoding:
      // A tab around a framing value is whitespace to RFC 9110 but an error to
      // llhttp 8, and a proxy that ignored the field would frame the body
      // differently: take no chances with the fields that frame it.
      if (has_tab_around(name_end, value)) {
        return fail(ec, name == beast_http::field::content_length ? error::bad_content_length
                                                                   : error::bad_transfer_encoding);
      }
      break;
    default:
      break;
  }
  switch (name) {
    case beast_http::field::host:
      if (++host_count_ > 1) return fail(ec, error::duplicate_host);
      break;
    case beast_http::field::content_length:
      // Beast accepts "5, 5" and repeated equal values; a proxy in front of us might
      // pick another one, so only a single plain number frames a body.
      if (++content_length_count_ > 1 || !is_digits(value)) return fail(ec, error::bad_content_length);
      if (transfer_encoding_seen_) return fail(ec, error::transfer_encoding_with_content_length);
      break;
    case beast_http::field::transfer_encoding:
      transfer_encoding_seen_ = true;
      if (request_.version_ < 11) return fail(ec, error::transfer_encoding_on_http10);
      if (content_length_count_ > 0) return fail(ec, error::transfer_encoding_with_content_length);
      add_transfer_codings(value);
      break;
    case beast_http::field::expect:
      if (!expect_.empty()) return fail(ec, error::expectation_failed);
      expect_ = value;
      break;
    default:
      break;
  }
  request_.fields_.push_back({name_string, value});
}

void RequestParser::on_header_impl(error_code& ec) {
  request_.header_count_ = request_.fields_.size();
  if (request_.version_ >= 11 && host_count_ == 0) return fail(ec, error::missing_host);
  if (transfer_encoding_seen_) {
    // RFC 9112 6.1 and 6.3: chunked must be the final coding, applied once; a
    // request whose final coding is not chunked has no reliable length.
    if (!transfer_encoding_syntax_ok_ || chunked_codings_ == 0 || !last_coding_chunked_ || chunked_codings_ > 1)
      return fail(ec, error::bad_transfer_encoding);
    if (other_codings_ > 0) return fail(ec, error::unsupported_transfer_coding);
  }
  // After a CONNECT head come tunnel bytes, not a body (RFC 9110 9.3.6), and a proxy
  // in front would take them so: a CONNECT that frames a body is refused.
  if (request_.method_ == "CONNECT" && (content_length_count_ > 0 || transfer_encoding_seen_))
    return fail(ec, content_length_count_ > 0 ? error::bad_content_length : error::bad_transfer_encoding);
  if (!expect_.empty() && request_.version_ >= 11) {
    if (!iequals(expect_, "100-continue")) return fail(ec, error::expectation_failed);
    request_.expects_continue_ = true;
  }
  request_.keep_alive_ = keep_alive();
  request_.chunked_ = chunked();
  if (!request_.chunked_) {
    auto length = content_length();
    if (length) request_.content_length_ = *length;
  }
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) {}

std::size_t RequestParser::deliver(std::string_view body, error_code& ec) {
  if (!request_.on_data_) return body.size();
  try {
    request_.on_data_(body);
  } catch (...) {
    callback_failed_ = true;
    ec = beast_http::error::bad_value;
  }
  return body.size();
}

std::size_t RequestParser::on_body_impl(boost::beast::string_view beast_body, error_code& ec) {
  const std::string_view body(beast_body.data(), beast_body.size());
  if (stream_body_) return deliver(body, ec);
  // Content-Length bodies arrive contiguous, right after the head.
  if (request_.body_begin_ == nullptr) request_.body_begin_ = body.data();
  request_.body_size_ += body.size();
  return body.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions, error_code& ec) {
  // The whole line (size digits and extensions) is bounded, as RequestReader bounds
  // a line still arriving: the reason must not depend on how the line arrived.
  const char* line = extensions.data();
  while (line > input_ && std::isxdigit(static_cast<unsigned char>(line[-1]))) --line;
  const std::string_view whole_line(line, static_cast<std::size_t>(extensions.data() + extensions.size() - line));
  if (whole_line.size() > chunk_line_limit(options_)) return fail(ec, chunk_line_overflow(options_, whole_line));
  if (extensions.size() > options_.max_chunk_extension_bytes) return fail(ec, error::chunk_extension_too_long);
  // Beast checks the syntax but lets any byte through a quoted string, and RFC
  // 9112 allows whitespace around ';' and '=' (BWS) that llhttp refuses and nobody
  // sends. Outside quotes: no whitespace. Inside: qdtext and quoted-pair only.
  bool quoted = false;
  for (std::size_t i = 0; i < extensions.size(); ++i) {
    const auto c = static_cast<unsigned char>(extensions[i]);
    if (!quoted) {
      if (c == '"') quoted = true;
      if (c == ' ' || c == '\t') return fail(ec, error::bad_chunk);
      continue;
    }
    if (c == '"') {
      quoted = false;
      continue;
    }
    if (c == '\\') {
      if (++i == extensions.size()) return fail(ec, error::bad_chunk);
      const auto escaped = static_cast<unsigned char>(extensions[i]);
      if (escaped != '\t' && (escaped < 0x20 || escaped == 0x7F)) return fail(ec, error::bad_chunk);
      continue;
    }
    // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    if (c != '\t' && (c < 0x20 || c == 0x7F)) return fail(ec, error::bad_chunk);
  }
  chunk_remaining_ = size;
  expect_chunk_crlf_ = false;
  if (size == 0) {
    in_trailers_ = true;
    trailer_start_ = extensions.data() + extensions.size() + 2;  // after the line's CRLF
  }
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view beast_body, error_code& ec) {
  const std::string_view body(beast_body.data(), beast_body.size());
  chunk_remaining_ -= std::min<std::uint64_t>(chunk_remaining_, body.size());
  if (chunk_remaining_ == 0) expect_chunk_crlf_ = true;
  if (stream_body_) return deliver(body, ec);
  // Join the chunks over their own framing: the body ends up contiguous in the
  // buffer, and the bytes written over were consumed already.
  char* source = mutable_at(body.data());
  if (request_.body_begin_ == nullptr) {
    request_.body_begin_ = source;
  } else {
    char* destination = mutable_at(request_.body_begin_ + request_.body_size_);
    if (destination != source) std::memmove(destination, source, body.size());
  }
  request_.body_size_ += body.size();
  return body.size();
}

void RequestParser::on_finish_impl(error_code&) {
  // A `Connection: close` among the trailers still closes (closing is always safe).
  request_.keep_alive_ = request_.keep_alive_ && keep_alive();
}

// ---------------------------------------------------------------------------
// RequestReader

RequestReader::RequestReader(const Options& options)
    : options_(options), initial_capacity_(std::max<std::size_t>(options.read_buffer_size, 2 * min_read_room)) {
  // The most one request may need at once: its head, its body (joined in place
  // unless streamed), one chunk line and a trailer section, plus reading room.
  const std::size_t chunk_line = options.max_chunk_extension_bytes + chunk_line_slack;
  std::size_t max = 2 * options.max_header_bytes + chunk_line + 2 * min_read_room;
  if (!options.stream_body) {
    const std::uint64_t body = std::min<std::uint64_t>(options.max_body_bytes, std::numeric_limits<std::size_t>::max() / 2);
    max += static_cast<std::size_t>(body);
  }
  max_capacity_ = std::max(max, initial_capacity_);
}

std::size_t RequestReader::keep_end() const noexcept {
  switch (phase_) {
    case ReadPhase::idle:
    case ReadPhase::head:  // nothing, or the request line and fields parsed so far
      return parse_pos_;
    case ReadPhase::body:
    case ReadPhase::complete:
      if (request_.body_begin_ != nullptr)
        return static_cast<std::size_t>(request_.body_begin_ - data_.get()) + request_.body_size_;
      return head_end_;
  }
  return parse_pos_;
}

void RequestReader::compact() noexcept {
  // Keep the current request's parsed bytes [request_start_, keep) and the unparsed
  // bytes [parse_pos_, end_); drop consumed framing, consumed streamed body and
  // everything before the request.
  const std::size_t keep = keep_end();
  const std::size_t kept = keep - request_start_;
  const std::size_t unparsed = end_ - parse_pos_;
  char* base = data_.get();
  if (head_pinned_) {
    // A streaming handler holds views of the head: only the bytes after it move.
    if (parse_pos_ > keep && unparsed > 0) std::memmove(base + keep, base + parse_pos_, unparsed);
    parse_pos_ = keep;
    end_ = keep + unparsed;
    return;
  }
  if (request_start_ == 0 && keep == parse_pos_) return;
  if (kept > 0) {
    std::memmove(base, base + request_start_, kept);
    request_.rebase(base, base, -static_cast<std::ptrdiff_t>(request_start_));
  }
  if (unparsed > 0) std::memmove(base + kept, base + parse_pos_, unparsed);
  head_end_ = head_end_ >= request_start_ ? head_end_ - request_start_ : 0;
  request_start_ = 0;
  parse_pos_ = kept;
  end_ = kept + unparsed;
}

bool RequestReader::grow(std::size_t wanted) {
  if (wanted <= capacity_) return true;
  // Moving a pinned head would leave a streaming handler's views dangling.
  if (capacity_ >= max_capacity_ || head_pinned_) return false;
  std::size_t size = std::max(wanted, capacity_ * 2);
  size = std::min(size, max_capacity_);
  auto bigger = std::make_unique<char[]>(size);
  if (end_ > 0) std::memcpy(bigger.get(), data_.get(), end_);
  request_.rebase(data_.get(), bigger.get(), 0);
  data_ = std::move(bigger);
  capacity_ = size;
  return true;
}

std::span<char> RequestReader::prepare() {
  if (!data_) {
    data_ = std::make_unique<char[]>(initial_capacity_);
    capacity_ = initial_capacity_;
  }
  if (capacity_ - end_ < min_read_room) compact();
  if (capacity_ - end_ < min_read_room) grow(end_ + std::max(min_read_room, capacity_));
  if (capacity_ == end_) {
    // Only a request beyond the limits can fill the largest buffer: refuse it for
    // what it overflows (the parser's own checks normally catch it first).
    if (phase_ == ReadPhase::head)
      fail(request_line_seen_ ? error::header_too_large : request_line_failure());
    else
      fail(request_.chunked_ ? error::trailers_too_large : error::body_too_large);
    return {};
  }
  return {data_.get() + end_, capacity_ - end_};
}

void RequestReader::reserve_for_body() {
  // Called when the head is complete and the body is not: nobody outside holds
  // views yet, so the head may still move to the front of a buffer sized for
  // what follows it.
  compact();
  const std::size_t head = head_end_ - request_start_;
  const std::size_t chunk_line = options_.max_chunk_extension_bytes + chunk_line_slack;
  std::size_t wanted = head + 2 * min_read_room;
  if (options_.stream_body) {
    // The head stays put from now on: leave room for a chunk line and trailers.
    if (request_.chunked_) wanted += chunk_line + options_.max_header_bytes;
  } else if (request_.content_length_) {
    wanted += static_cast<std::size_t>(*request_.content_length_);
  }
  grow(std::min(wanted, max_capacity_));
  head_pinned_ = options_.stream_body;
}

void RequestReader::release_memory() noexcept {
  if (phase_ != ReadPhase::idle || end_ != parse_pos_) return;
  request_start_ = parse_pos_ = end_ = head_end_ = 0;
  if (capacity_ > initial_capacity_) {
    data_.reset();
    capacity_ = 0;
  }
}

void RequestReader::finish_request() noexcept {
  parser_.reset();
  head_pinned_ = false;
  phase_ = ReadPhase::idle;
  request_start_ = parse_pos_;
  if (parse_pos_ == end_) request_start_ = parse_pos_ = end_ = head_end_ = 0;
}

ReadEvent RequestReader::fail(error reason) noexcept {
  failed_ = true;
  failure_ = reason;
  return ReadEvent::failed;
}

error RequestReader::request_line_failure() const noexcept {
  // The head is too long and its request line did not end within the limit: a
  // long target gets 414, anything else (a method that never ends) is malformed.
  const std::size_t prefix = std::min(end_ - request_start_, options_.max_header_bytes);
  const std::string_view line(data_.get() + request_start_, prefix);
  const std::size_t space = line.find(' ');
  if (space != std::string_view::npos && space > 0 && is_token(line.substr(0, space))) return error::target_too_long;
  return error::bad_request_line;
}

std::optional<error> RequestReader::check_request_line(std::string_view line) const noexcept {
  // request-line = method SP request-target SP HTTP-version, checked here rather
  // than by Beast so that the target's form and the version get their own answers.
  const std::size_t method_end = line.find(' ');
  if (method_end == std::string_view::npos || !is_token(line.substr(0, method_end))) return error::bad_request_line;
  const std::string_view method = line.substr(0, method_end);
  std::size_t target_end = method_end + 1;
  while (target_end < line.size() && line[target_end] != ' ') ++target_end;
  const std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
  if (target.size() > options_.max_target_length) return error::target_too_long;
  if (!is_visible_ascii(target) || !is_request_target_form(method, target)) return error::bad_target;
  if (target_end == line.size()) return error::bad_request_line;
  const std::string_view version = line.substr(target_end + 1);
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    return error::bad_request_line;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return error::unsupported_version;
  return std::nullopt;
}

RequestReader::HeadScan RequestReader::scan_head() noexcept {
  // Beast is only ever given a whole head: when it gets a part, it later waits for
  // a CRLF CRLF without looking at the bytes between, so a head with a bare LF would
  // be refused whole but wait for the limit when split. Scanning here, one line at
  // a time in byte order, makes the outcome independent of how the bytes arrived.
  const char* data = data_.get() + request_start_;
  const std::size_t available = end_ - request_start_;
  const std::size_t limit = options_.max_header_bytes;  // the head must end before this
  const std::size_t stop = std::min(available, limit);
  std::size_t i = head_scanned_;
  while (i < stop) {
    const auto* lf = static_cast<const char*>(std::memchr(data + i, '\n', stop - i));
    const std::size_t line_end = lf ? static_cast<std::size_t>(lf - data) : stop;
    // A CR is only allowed right before the LF that ends its line.
    if (const auto* cr = static_cast<const char*>(std::memchr(data + i, '\r', line_end - i))) {
      const auto at = static_cast<std::size_t>(cr - data);
      if (at + 1 < line_end) {
        fail(request_line_seen_ ? error::bad_header : error::bad_request_line);
        return HeadScan::failed;
      }
      if (!lf) {
        if (at + 1 == available) {
          head_scanned_ = at;  // decide once the next byte is here
          return HeadScan::need_more;
        }
        if (data[at + 1] != '\n') {
          fail(request_line_seen_ ? error::bad_header : error::bad_request_line);
          return HeadScan::failed;
        }
      }
    }
    if (!lf) break;
    if (line_end == 0 || data[line_end - 1] != '\r') {
      fail(request_line_seen_ ? error::bad_header : error::bad_request_line);
      return HeadScan::failed;
    }
    if (!request_line_seen_) {
      request_line_seen_ = true;
      if (auto reason = check_request_line(std::string_view(data, line_end - 1))) {
        fail(*reason);
        return HeadScan::failed;
      }
    }
    if (line_end >= 3 && data[line_end - 2] == '\n' && data[line_end - 3] == '\r') {
      head_scanned_ = line_end + 1;
      return HeadScan::complete;
    }
    i = line_end + 1;
  }
  head_scanned_ = stop;
  if (available >= limit) {
    fail(request_line_seen_ ? error::header_too_large : request_line_failure());
    return HeadScan::failed;
  }
  return HeadScan::need_more;
}

error RequestReader::map_beast_error(const error_code& ec) const noexcept {
  const bool field_error = ec == beast_http::error::bad_field || ec == beast_http::error::bad_value ||
                           ec == beast_http::error::bad_line_ending || ec == beast_http::error::bad_content_length ||
                           ec == beast_http::error::multiple_content_length ||
                           ec == beast_http::error::bad_transfer_encoding;
  if (field_error && phase_ == ReadPhase::head && parser_->request_line_done()) {
    // Beast joins folded lines before it checks a field, so the fold may be what
    // made it fail (a folded Content-Length, say): the failing field starts at
    // the first unconsumed byte.
    std::string_view rest(data_.get() + parse_pos_, end_ - parse_pos_);
    const std::size_t line_end = rest.find("\r\n");
    if (line_end != std::string_view::npos && line_end + 2 < rest.size() &&
        (rest[line_end + 2] == ' ' || rest[line_end + 2] == '\t'))
      return error::obs_fold;
  }
  if (ec == beast_http::error::header_limit)
    return parser_->request_line_done() ? error::header_too_large : request_line_failure();
  if (ec == beast_http::error::bad_method) return error::bad_request_line;
  if (ec == beast_http::error::bad_target) return error::bad_target;
  if (ec == beast_http::error::bad_version) {
    // A well-formed version we do not speak is 505; anything else is malformed.
    std::string_view line(data_.get() + request_start_, end_ - request_start_);
    return is_unsupported_version(line) ? error::unsupported_version : error::bad_request_line;
  }
  if (phase_ == ReadPhase::body && request_.chunked_) {
    // What the reader refuses a chunk line or trailer section for while it arrives
    // (its length, first of all) comes first, as it does when the bytes trickle in.
    if (auto problem = chunk_framing_problem()) return *problem;
  }
  if (ec == beast_http::error::bad_content_length || ec == beast_http::error::multiple_content_length)
    return parser_->transfer_encoding_seen() ? error::transfer_encoding_with_content_length
                                             : error::bad_content_length;
  if (ec == beast_http::error::bad_transfer_encoding)
    return parser_->content_length_seen() ? error::transfer_encoding_with_content_length
                                          : error::bad_transfer_encoding;
  if (ec == beast_http::error::body_limit) return error::body_too_large;
  if (ec == beast_http::error::bad_chunk || ec == beast_http::error::bad_chunk_extension) return error::bad_chunk;
  if (ec == beast_http::error::bad_obs_fold) return error::obs_fold;

  if (!parser_->request_line_done()) return error::bad_request_line;
  if (phase_ == ReadPhase::body) return error::bad_chunk;
  return error::bad_header;
}

std::optional<error> RequestReader::chunk_framing_problem() const noexcept {
  if (parser_->chunk_data_remaining() > 0) return std::nullopt;  // inside a chunk's data
  // Beast waits for the end of a chunk line or a trailer section with no bound of
  // its own: bound them here, in byte order, so that the first problem in the
  // bytes wins however they arrived.
  const auto line_start = pending_chunk_line();
  if (!line_start) return std::nullopt;
  const std::string_view pending = *line_start;
  // Like Beast, a chunk line ends at its first CR.
  const std::size_t line_end = pending.find('\r');
  const std::size_t line_limit = chunk_line_limit(options_);
  if (line_end == std::string_view::npos) {
    if (pending.size() > line_limit) return chunk_line_overflow(options_, pending);
    return std::nullopt;
  }
  if (line_end > line_limit) return chunk_line_overflow(options_, pending);
  // Not yet known whether the CR ends the line, or a bare CR Beast refuses itself.
  if (line_end + 1 >= pending.size() || pending[line_end + 1] != '\n') return std::nullopt;
  // A quoted extension running past the end of its line: Beast scans on (and, for
  // a chunk with data, takes its size off the body limit again on every retry).
  const std::string_view line = pending.substr(0, line_end);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (quoted && line[i] == '\\')
      ++i;
    else if (line[i] == '"')
      quoted = !quoted;
  }
  if (quoted) return error::bad_chunk;
  if (!is_last_chunk_line(line)) return std::nullopt;
  // The last chunk: its trailer section. The parse-time check counts to the end of
  // the last field value, so a section within it may still have "\r\n\r\n" to come.
  std::string_view trailers = pending.substr(line_end + 2);
  // Only the section itself: what follows it is the next request's business.
  if (trailers.starts_with("\r\n")) {
    trailers = trailers.substr(0, 2);  // no trailer fields
  } else if (const std::size_t end = trailers.find("\r\n\r\n"); end != std::string_view::npos) {
    trailers = trailers.substr(0, end + 4);
  }
  const std::size_t limit = options_.max_header_bytes + 4;
  for (std::size_t i = 0; i < std::min(trailers.size(), limit); ++i) {
    if (trailers[i] == '\n' && (i == 0 || trailers[i - 1] != '\r')) return error::bad_chunk;
    if (trailers[i] == '\r' && i + 1 < trailers.size() && trailers[i + 1] != '\n') return error::bad_chunk;
  }
  if (trailers.size() > limit) return error::trailers_too_large;
  return std::nullopt;
}

std::optional<std::string_view> RequestReader::pending_chunk_line() const noexcept {
  std::string_view pending(data_.get() + parse_pos_, end_ - parse_pos_);
  // The CRLF that ends a chunk's data is parsed with the next chunk line. Until it
  // has arrived whole, or when something else came instead (Beast refuses that),
  // there is no chunk line to look at.
  if (parser_->expects_chunk_crlf()) {
    if (!pending.starts_with("\r\n")) return std::nullopt;
    pending.remove_prefix(2);
  }
  return pending;
}


bool RequestReader::awaiting_trailer_section() const noexcept {
  if (parser_->chunk_data_remaining() > 0) return false;
  const auto line_start = pending_chunk_line();
  if (!line_start) return false;
  const std::string_view pending = *line_start;
  // Like Beast, a chunk line ends at its first CR, which must come with its LF.
  const std::size_t line_end = pending.find('\r');
  if (line_end == std::string_view::npos || line_end + 1 >= pending.size() || pending[line_end + 1] != '\n') return false;
  if (!is_last_chunk_line(pending.substr(0, line_end))) return false;
  const std::string_view trailers = pending.substr(line_end + 2);
  return !trailers.starts_with("\r\n") && trailers.find("\r\n\r\n") == std::string_view::npos;
}

ReadEvent RequestReader::fail_need_more() {
  if (phase_ != ReadPhase::body || !request_.chunked_) return ReadEvent::need_more;
  if (parser_->chunk_data_remaining() > 0) return ReadEvent::need_more;
  if (auto problem = chunk_framing_problem()) return fail(*problem);
  // A whole line of a chunk with data that Beast did not take: nothing but the
  // quoted extension above should cause that; refuse rather than wait.
  const auto line_start = pending_chunk_line();
  if (!line_start) return ReadEvent::need_more;
  const std::string_view pending = *line_start;
  const std::size_t line_end = pending.find('\r');
  if (line_end != std::string_view::npos && line_end + 1 < pending.size() && pending[line_end + 1] == '\n' &&
      is_data_chunk_line(pending.substr(0, line_end)))
    return fail(error::bad_chunk);
  return ReadEvent::need_more;
}

ReadEvent RequestReader::next() {
  if (failed_) return ReadEvent::failed;
  if (phase_ == ReadPhase::complete) {
    if (!head_reported_) {
      head_reported_ = true;
      return ReadEvent::head;
    }
    complete_reported_ = true;
    return ReadEvent::complete;
  }
  // Every pass consumes bytes or returns, so this ends within the buffered bytes.
  for (;;) {
    if (phase_ == ReadPhase::idle) {
      // RFC 9112 2.2: ignore empty lines before a request-line (some clients send
      // a CRLF after a body). The idle timeout bounds a client that sends only these.
      const char* data = data_.get();
      while (end_ - parse_pos_ >= 2 && data[parse_pos_] == '\r' && data[parse_pos_ + 1] == '\n') parse_pos_ += 2;
      request_start_ = parse_pos_;
      if (parse_pos_ == end_ || (end_ - parse_pos_ == 1 && data[parse_pos_] == '\r')) {
        if (parse_pos_ == end_) request_start_ = parse_pos_ = end_ = 0;
        return ReadEvent::need_more;
      }
      request_.reset();
      parser_.emplace(options_, request_, options_.stream_body);
      request_start_ = parse_pos_;
      head_end_ = 0;
      phase_ = ReadPhase::head;
      head_reported_ = false;
      complete_reported_ = false;
      head_scanned_ = 0;
      request_line_seen_ = false;
    }
    if (phase_ == ReadPhase::head) {
      const HeadScan scan = scan_head();
      if (scan == HeadScan::failed) return ReadEvent::failed;
      if (scan == HeadScan::need_more) return ReadEvent::need_more;
    }
    const std::size_t available = end_ - parse_pos_;
    if (available == 0) return fail_need_more();
    // Beast 1.81 asserts (n >= 5) when it is handed the rest of a last chunk whose
    // trailer section is still incomplete, and it would only wait anyway.
    if (phase_ == ReadPhase::body && request_.chunked_ && awaiting_trailer_section()) return fail_need_more();
    error_code ec;
    const std::size_t used = parser_->parse(data_.get() + parse_pos_, available, ec);
    parse_pos_ += used;
    if (phase_ == ReadPhase::head && parser_->is_header_done()) {
      phase_ = ReadPhase::body;
      head_end_ = parse_pos_;
    }
    if (parser_->is_done()) phase_ = ReadPhase::complete;

    if (ec && ec != beast_http::error::need_more) {
      if (parser_->callback_failed()) {
        callback_failed_ = true;
        return fail(error::bad_request_line);
      }
        error reason = parser_->policy_error() ? *parser_->policy_error() : map_beast_error(ec);
      // Inside a trailer section every refusal is one of the chunked-framing reasons:
      // which one can depend on how much of the section arrived at once.
      if (parser_->in_trailers() && reason != error::trailers_too_large) reason = error::bad_chunk;
      return fail(reason);
    }
    if (phase_ != ReadPhase::head && !head_reported_) {
      head_reported_ = true;
      parser_->eager(true);
      if (phase_ == ReadPhase::body) reserve_for_body();
      return ReadEvent::head;
    }
    if (phase_ == ReadPhase::complete) {
      complete_reported_ = true;
      return ReadEvent::complete;
    }
    if (ec == beast_http::error::need_more || used == 0) return fail_need_more();
  }
}

}  // namespace multinode::http::detail

// The request grammar and framing policy (RequestParser) and the connection's
// input buffer (RequestReader). docs/http.md, "The strict policy", lists every
// refusal; each is decided here, in byte order, so that the outcome never depends
// on how the bytes arrived.
#include "http/parser.hpp"

#include "http/text.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace multinode::http::detail {

namespace {

// Room for the chunk-size line around its extensions: size digits, spaces, CRLF.
constexpr std::size_t chunk_line_slack = 64;
// Below this much free room the buffer is compacted, then grown.
constexpr std::size_t min_read_room = 2048;

bool is_whitespace(char c) noexcept {
  return c == ' ' || c == '\t';
}

bool contains_tab(std::string_view s) noexcept {
  return s.find('\t') != std::string_view::npos;
}

// chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ). RFC 9112 allows
// whitespace around ';' and '=' (BWS) that llhttp refuses and nobody sends: none here.
bool is_chunk_extensions(std::string_view ext) noexcept {
  const std::size_t n = ext.size();
  std::size_t i = 0;
  auto token = [&] {
    const std::size_t start = i;
    while (i < n && is_token_char(ext[i])) ++i;
    return i > start;
  };
  while (i < n) {
    if (ext[i++] != ';' || !token()) return false;
    if (i == n || ext[i] != '=') continue;
    ++i;
    if (i < n && ext[i] == '"') {
      // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, on this line.
      for (++i;; ++i) {
        if (i == n) return false;
        if (ext[i] == '"') break;
        if (ext[i] == '\\') {
          if (++i == n || !has_class(ext[i], quoted_pair_class)) return false;
        } else if (!has_class(ext[i], qdtext_class)) {
          return false;
        }
      }
      ++i;
    } else if (!token()) {
      return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// RequestParser: the head and the trailer section, line by line

Parse RequestParser::scan_head(const char* head, std::size_t size) noexcept {
  // A request starts with its method, a token: a first byte that cannot (a TLS
  // ClientHello's 0x16, a binary protocol) is refused at once instead of waiting
  // for a line end that may never come. Every later outcome would be the same.
  if (lines_.scanned == 0 && size > 0 && !is_token_char(head[0])) return fail(error::bad_request_line);
  return scan_lines(head, size, options_.max_header_bytes);
}

Parse RequestParser::scan_lines(const char* data, std::size_t available, std::size_t limit) noexcept {
  // One line at a time in byte order, each byte looked at once however the bytes
  // arrive: the block must end before `limit`, a CR only right before its LF.
  const std::size_t stop = std::min(available, limit);
  auto line_error = [this] {
    if (in_trailers_) return error::bad_chunk;
    return lines_.count == 0 ? error::bad_request_line : error::bad_header;
  };
  std::size_t i = lines_.scanned;
  while (i < stop) {
    const auto* lf = static_cast<const char*>(std::memchr(data + i, '\n', stop - i));
    const std::size_t line_end = lf ? static_cast<std::size_t>(lf - data) : stop;
    if (const auto* cr = static_cast<const char*>(std::memchr(data + i, '\r', line_end - i))) {
      const auto at = static_cast<std::size_t>(cr - data);
      if (at + 1 < line_end) return fail(line_error());
      if (!lf) {
        if (at + 1 == available) {
          lines_.scanned = at;  // decide once the next byte is here
          return Parse::need_more;
        }
        if (data[at + 1] != '\n') return fail(line_error());
      }
    }
    if (!lf) break;
    if (line_end == lines_.line_start || data[line_end - 1] != '\r') return fail(line_error());
    const Parse result = on_line(data, lines_.line_start, line_end - 1);
    i = lines_.line_start = line_end + 1;
    if (result != Parse::need_more) {
      lines_.scanned = i;
      return result;
    }
  }
  lines_.scanned = stop;
  if (available >= limit) {
    if (in_trailers_) return fail(error::trailers_too_large);
    return fail(lines_.count > 0 ? error::header_too_large : request_line_failure(data, available));
  }
  return Parse::need_more;
}

Parse RequestParser::on_line(const char* data, std::size_t start, std::size_t end) noexcept {
  if (!in_trailers_ && lines_.count == 0) {
    lines_.count = 1;
    if (auto reason = check_request_line(std::string_view(data + start, end - start))) return fail(*reason);
    return Parse::need_more;
  }
  ++lines_.count;
  // A line starting with SP or HTAB continues the field line before it (obs-fold).
  if (lines_.pending) process_field(data, start < end && is_whitespace(data[start]));
  if (start == end) {
    // The empty line that ends the block.
    if (lines_.deferred) return fail(*lines_.deferred);
    if (in_trailers_) return Parse::done;
    if (auto reason = finish_head()) return fail(*reason);
    return Parse::done;
  }
  lines_.pending = true;
  lines_.pending_start = start;
  lines_.pending_end = end;
  return Parse::need_more;
}

std::optional<error> RequestParser::check_request_line(std::string_view line) noexcept {
  // request-line = method SP request-target SP HTTP-version
  const std::size_t method_end = line.find(' ');
  if (method_end == std::string_view::npos || !is_token(line.substr(0, method_end)))
    return error::bad_request_line;
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
  // RFC 9110 2.5: a higher minor version of a major version we implement is
  // processed as the highest we implement (HTTP/1.2 as HTTP/1.1); other majors get 505.
  if (version[5] != '1') return error::unsupported_version;
  request_.method_ = method;
  request_.target_ = target;
  request_.version_ = version[7] == '0' ? 10 : 11;
  return std::nullopt;
}

error RequestParser::request_line_failure(const char* head, std::size_t size) const noexcept {
  // The head is too long and its request line did not end within the limit: a
  // long target gets 414, anything else (a method that never ends) is malformed.
  const std::string_view line(head, std::min(size, options_.max_header_bytes));
  const std::size_t space = line.find(' ');
  if (space != std::string_view::npos && space > 0 && is_token(line.substr(0, space)))
    return error::target_too_long;
  return error::bad_request_line;
}

error RequestParser::head_overflow(const char* head, std::size_t size) const noexcept {
  return lines_.count > 0 ? error::header_too_large : request_line_failure(head, size);
}

void RequestParser::process_field(const char* data, bool folded) noexcept {
  lines_.pending = false;
  if (lines_.deferred) return;  // only the first refusal counts
  const std::string_view line(data + lines_.pending_start, lines_.pending_end - lines_.pending_start);
  if (auto reason = check_field(line, folded)) {
    // Inside a trailer section every refusal but its size is a malformed chunked body.
    lines_.deferred = in_trailers_ && *reason != error::trailers_too_large ? error::bad_chunk : *reason;
  }
}

std::optional<error> RequestParser::check_field(std::string_view line, bool folded) noexcept {
  // field-line = field-name ":" OWS field-value OWS; folded lines are refused,
  // whatever else is wrong with them.
  if (folded) return error::obs_fold;
  std::size_t colon = 0;
  while (colon < line.size() && is_token_char(line[colon])) ++colon;
  if (colon == 0 || colon == line.size() || line[colon] != ':') return error::bad_header;
  std::size_t begin = colon + 1;
  while (begin < line.size() && is_whitespace(line[begin])) ++begin;
  for (std::size_t i = begin; i < line.size(); ++i)
    if (!has_class(line[i], field_value_class)) return error::bad_header;
  std::size_t end = line.size();
  while (end > begin && is_whitespace(line[end - 1])) --end;
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = line.substr(begin, end - begin);
  auto reason = in_trailers_ ? check_trailer_field(name, value) : check_header_field(line, name, value);
  if (!reason) request_.fields_.push_back({name, value});
  return reason;
}

std::optional<error> RequestParser::check_header_field(std::string_view line, std::string_view name,
                                                       std::string_view value) noexcept {
  if (request_.fields_.size() >= options_.max_header_count) return error::too_many_headers;
  // A tab around a framing value is whitespace to RFC 9110 but an error to llhttp 8,
  // and a proxy that ignored the field would frame the body differently: take no
  // chances with the fields that frame it.
  auto tab_around = [&] {
    const std::size_t colon = name.size();
    const auto before = static_cast<std::size_t>(value.data() - line.data()) - colon - 1;
    return contains_tab(line.substr(colon + 1, before)) ||
           contains_tab(line.substr(before + colon + 1 + value.size()));
  };
  switch (name.size()) {
    case 4:
      if (iequals(name, "host")) {
        if (++host_count_ > 1) return error::duplicate_host;
        if (!is_host(value)) return error::bad_host;
      }
      break;
    case 6:
      if (iequals(name, "expect")) {
        if (!expect_.empty()) return error::expectation_failed;
        expect_ = value;
      }
      break;
    case 10:
      if (iequals(name, "connection") && !add_connection_options(value)) return error::bad_header;
      break;
    case 14:
      if (iequals(name, "content-length")) {
        // Only a single plain number frames a body: a proxy in front of us might
        // pick another value of "5, 5" or of a repeated field.
        if (transfer_encoding_seen_) return error::transfer_encoding_with_content_length;
        if (++content_length_count_ > 1 || tab_around() || !parse_decimal(value, content_length_))
          return error::bad_content_length;
      }
      break;
    case 16:
      if (iequals(name, "proxy-connection") && !add_connection_options(value)) return error::bad_header;
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        if (content_length_count_ > 0) return error::transfer_encoding_with_content_length;
        if (last_coding_chunked_ || tab_around()) return error::bad_transfer_encoding;
        transfer_encoding_seen_ = true;
        if (request_.version_ < 11) return error::transfer_encoding_on_http10;
        add_transfer_codings(value);
      }
      break;
    default:
      break;
  }
  return std::nullopt;
}

std::optional<error> RequestParser::check_trailer_field(std::string_view name,
                                                        std::string_view value) noexcept {
  if (++trailer_count_ > options_.max_header_count) return error::trailers_too_large;
  // Framing fields come too late among the trailers; `Connection: close` still closes.
  if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) return error::bad_chunk;
  if ((iequals(name, "connection") || iequals(name, "proxy-connection")) && !add_connection_options(value))
    return error::bad_chunk;
  return std::nullopt;
}

bool RequestParser::add_connection_options(std::string_view value) noexcept {
  // Connection = #connection-option: tokens; empty list elements are legal.
  return for_each_list_element(value, [this](std::string_view option) {
    if (option.empty()) return true;
    if (!is_token(option)) return false;
    if (iequals(option, "close")) connection_close_ = true;
    if (iequals(option, "keep-alive")) connection_keep_alive_ = true;
    return true;
  });
}

void RequestParser::add_transfer_codings(std::string_view value) noexcept {
  // Parameters are refused: neither `chunked` nor anything we would accept before
  // it takes one. Empty list elements are legal list syntax, but llhttp and others
  // refuse them here; refusing is the side that cannot be smuggled through.
  for_each_list_element(value, [this](std::string_view coding) {
    if (!is_token(coding)) {
      transfer_encoding_syntax_ok_ = false;
    } else if (iequals(coding, "chunked")) {
      ++chunked_codings_;
      last_coding_chunked_ = true;
    } else {
      ++other_codings_;
      last_coding_chunked_ = false;
    }
    return true;
  });
}

bool RequestParser::keep_alive() const noexcept {
  return request_.version_ >= 11 ? !connection_close_ : connection_keep_alive_;
}

std::optional<error> RequestParser::finish_head() noexcept {
  request_.header_count_ = request_.fields_.size();
  if (content_length_count_ > 0 && content_length_ > options_.max_body_bytes) return error::body_too_large;
  if (request_.version_ >= 11 && host_count_ == 0) return error::missing_host;
  if (transfer_encoding_seen_) {
    // RFC 9112 6.1 and 6.3: chunked must be the final coding, applied once; a
    // request whose final coding is not chunked has no reliable length.
    if (!transfer_encoding_syntax_ok_ || chunked_codings_ != 1 || !last_coding_chunked_)
      return error::bad_transfer_encoding;
    if (other_codings_ > 0) return error::unsupported_transfer_coding;
  }
  // After a CONNECT head come tunnel bytes, not a body (RFC 9110 9.3.6), and a proxy
  // in front would take them so: a CONNECT that frames a body is refused.
  if (request_.method_ == "CONNECT" && (content_length_count_ > 0 || transfer_encoding_seen_))
    return content_length_count_ > 0 ? error::bad_content_length : error::bad_transfer_encoding;
  if (!expect_.empty() && request_.version_ >= 11) {
    if (!iequals(expect_, "100-continue")) return error::expectation_failed;
    request_.expects_continue_ = true;
  }
  request_.keep_alive_ = keep_alive();
  request_.chunked_ = transfer_encoding_seen_;
  if (transfer_encoding_seen_) {
    body_state_ = BodyState::chunk_line;
    body_budget_ = options_.max_body_bytes;
  } else if (content_length_count_ > 0) {
    request_.content_length_ = content_length_;
    remaining_ = content_length_;
    if (content_length_ > 0) body_state_ = BodyState::length;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// RequestParser: the body and the chunk lexer

bool RequestParser::deliver(char* data, std::size_t size) {
  if (options_.stream_body) {
    if (!request_.on_data_) return true;
    try {
      request_.on_data_(std::string_view(data, size));
    } catch (...) {
      callback_failed_ = true;
      return false;
    }
    return true;
  }
  // Join the chunks over their own framing: the body ends up contiguous in the
  // buffer, and the bytes written over were consumed already. Content-Length
  // bodies arrive contiguous, right after the head.
  if (request_.body_begin_ == nullptr) {
    request_.body_begin_ = data;
  } else {
    // The body's end, as a mutable pointer: it lies in the same buffer as data.
    char* destination = data - (data - (request_.body_begin_ + request_.body_size_));
    if (destination != data) std::memmove(destination, data, size);
  }
  request_.body_size_ += size;
  return true;
}

error RequestParser::chunk_line_overflow(std::string_view line) const noexcept {
  // Judged from the first bytes only, so that the answer is the same however much
  // of the line has arrived.
  return line.substr(0, chunk_line_limit_ + 1).find(';') != std::string_view::npos
             ? error::chunk_extension_too_long
             : error::bad_chunk;
}

Parse RequestParser::lex_chunk_line(const char* line, std::size_t available,
                                    std::size_t& line_size) noexcept {
  // chunk-size [ chunk-ext ] CRLF, bounded while it arrives. A chunk line ends at
  // its first CR (an LF before it is a bad byte in the line).
  const std::size_t window = std::min(available, chunk_line_limit_ + 1);
  const auto* cr = static_cast<const char*>(std::memchr(line, '\r', window));
  if (!cr) {
    if (available > chunk_line_limit_) return fail(chunk_line_overflow(std::string_view(line, window)));
    return Parse::need_more;
  }
  const auto length = static_cast<std::size_t>(cr - line);
  if (length + 1 == available) return Parse::need_more;
  if (line[length + 1] != '\n') return fail(error::bad_chunk);
  line_size = length + 2;
  std::uint64_t size = 0;
  std::size_t digits = 0;
  for (; digits < length && has_class(line[digits], hex_class); ++digits) {
    if (size > (std::numeric_limits<std::uint64_t>::max() >> 4))
      return fail(error::bad_chunk);  // above 2^64-1
    size = size << 4 | hex_value(line[digits]);
  }
  if (digits == 0) return fail(error::bad_chunk);
  const std::string_view extensions(line + digits, length - digits);
  if (extensions.size() > options_.max_chunk_extension_bytes) return fail(error::chunk_extension_too_long);
  if (!is_chunk_extensions(extensions)) return fail(error::bad_chunk);
  if (size == 0) {
    // last-chunk = 1*("0") [ chunk-ext ] CRLF, then the trailer section.
    body_state_ = BodyState::trailers;
    in_trailers_ = true;
    lines_ = Lines{};
    return Parse::done;
  }
  if (size > body_budget_) return fail(error::body_too_large);
  body_budget_ -= size;
  remaining_ = size;
  body_state_ = BodyState::chunk_data;
  return Parse::done;
}

Parse RequestParser::parse_body(char* data, std::size_t size, std::size_t& used) {
  std::size_t pos = 0;
  Parse result = Parse::need_more;
  while (result == Parse::need_more && pos < size) {
    switch (body_state_) {
      case BodyState::length:
      case BodyState::chunk_data: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - pos));
        if (!deliver(data + pos, n)) {
          result = fail(error::bad_request_line);
          break;
        }
        pos += n;
        remaining_ -= n;
        if (remaining_ > 0) break;
        if (body_state_ == BodyState::length) {
          body_state_ = BodyState::done;
          result = Parse::done;
        } else {
          body_state_ = BodyState::chunk_crlf;
        }
        break;
      }
      case BodyState::chunk_crlf:
        // The CRLF after a chunk's data, refused at its first wrong byte.
        if (data[pos] != '\r' || (pos + 1 < size && data[pos + 1] != '\n')) {
          result = fail(error::bad_chunk);
        } else if (pos + 1 < size) {
          pos += 2;
          body_state_ = BodyState::chunk_line;
        } else {
          used = pos;
          return Parse::need_more;
        }
        break;
      case BodyState::chunk_line: {
        std::size_t line_size = 0;
        result = lex_chunk_line(data + pos, size - pos, line_size);
        if (result == Parse::done) {
          pos += line_size;
          result = Parse::need_more;
        } else if (result == Parse::need_more) {
          used = pos;
          return result;
        }
        break;
      }
      case BodyState::trailers:
        // The section stays unconsumed until it is complete: scan_lines keeps its
        // offsets from the section's start.
        result = scan_lines(data + pos, size - pos, options_.max_header_bytes + 4);
        if (result == Parse::done) {
          pos += lines_.scanned;
          body_state_ = BodyState::done;
          // A `Connection: close` among the trailers still closes (closing is always safe).
          request_.keep_alive_ = request_.keep_alive_ && keep_alive();
        } else if (result == Parse::need_more) {
          used = pos;
          return result;
        }
        break;
      case BodyState::done:
        result = Parse::done;
        break;
    }
  }
  used = pos;
  if (result == Parse::need_more && body_state_ == BodyState::done) result = Parse::done;
  return result;
}

// ---------------------------------------------------------------------------
// RequestReader

RequestReader::RequestReader(const Options& options, BufferPool* pool)
    : options_(options),
      chunk_line_limit_(options.max_chunk_extension_bytes + chunk_line_slack),
      initial_capacity_(initial_capacity(options)),
      pool_(pool) {
  // The most one request may need at once: its head, its body (joined in place
  // unless streamed), one chunk line and a trailer section, plus reading room.
  std::size_t max = 2 * options.max_header_bytes + chunk_line_limit_ + 2 * min_read_room;
  if (!options.stream_body) {
    const std::uint64_t body =
        std::min<std::uint64_t>(options.max_body_bytes, std::numeric_limits<std::size_t>::max() / 2);
    max += static_cast<std::size_t>(body);
  }
  max_capacity_ = std::max(max, initial_capacity_);
}

std::size_t RequestReader::initial_capacity(const Options& options) noexcept {
  return std::max<std::size_t>(options.read_buffer_size, 2 * min_read_room);
}

RequestReader::~RequestReader() {
  release();
}

void RequestReader::release() noexcept {
  if (!data_) return;
  if (pool_) pool_->give({std::move(data_), capacity_});
  data_.reset();
  capacity_ = 0;
}

std::size_t RequestReader::keep_end() const noexcept {
  switch (phase_) {
    case ReadPhase::idle:
    case ReadPhase::head:  // nothing: a head is consumed whole, once complete
      return parse_pos_;
    case ReadPhase::body:
    case ReadPhase::complete:
      // Trailers are views into the consumed trailer section: keep it all.
      if (request_.fields_.size() > request_.header_count_) return parse_pos_;
      if (request_.body_begin_ != nullptr)
        return static_cast<std::size_t>(request_.body_begin_ - data_.get()) + request_.body_size_;
      return head_end_;
  }
  return parse_pos_;
}

void RequestReader::move_views(std::size_t split, std::ptrdiff_t before, std::ptrdiff_t after) noexcept {
  // The views into the parsed bytes (before `split`) move by `before`, those into
  // unparsed bytes (a head or trailer section still arriving) by `after`.
  const char* at = data_.get() + split;
  auto move = [&](std::string_view view) -> std::string_view {
    if (view.data() == nullptr) return view;
    return {view.data() + (view.data() < at ? before : after), view.size()};
  };
  request_.method_ = move(request_.method_);
  request_.target_ = move(request_.target_);
  for (Field& field : request_.fields_) {
    field.name = move(field.name);
    field.value = move(field.value);
  }
  if (request_.body_begin_ != nullptr) request_.body_begin_ += request_.body_begin_ < at ? before : after;
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
    move_views(parse_pos_, 0, static_cast<std::ptrdiff_t>(keep) - static_cast<std::ptrdiff_t>(parse_pos_));
    if (parse_pos_ > keep && unparsed > 0) std::memmove(base + keep, base + parse_pos_, unparsed);
    parse_pos_ = keep;
    end_ = keep + unparsed;
    return;
  }
  if (request_start_ == 0 && keep == parse_pos_) return;
  move_views(parse_pos_, -static_cast<std::ptrdiff_t>(request_start_),
             static_cast<std::ptrdiff_t>(kept) - static_cast<std::ptrdiff_t>(parse_pos_));
  if (kept > 0) std::memmove(base, base + request_start_, kept);
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
  request_.rebase(data_.get(), bigger.get());
  data_ = std::move(bigger);
  capacity_ = size;
  return true;
}

std::span<char> RequestReader::prepare() {
  if (!data_) {
    if (pool_) {
      PooledBuffer buffer = pool_->take(initial_capacity_);
      data_ = std::move(buffer.data);
      capacity_ = buffer.capacity;
    } else {
      data_ = std::make_unique<char[]>(initial_capacity_);
      capacity_ = initial_capacity_;
    }
  }
  if (capacity_ - end_ < min_read_room) compact();
  if (capacity_ - end_ < min_read_room) grow(end_ + std::max(min_read_room, capacity_));
  if (capacity_ == end_) {
    // Only a request beyond the limits can fill the largest buffer: refuse it for
    // what it overflows (the parser's own checks normally catch it first).
    if (phase_ == ReadPhase::head)
      fail(parser_->head_overflow(data_.get() + request_start_, end_ - request_start_));
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
  std::size_t wanted = head + 2 * min_read_room;
  if (options_.stream_body) {
    // The head stays put from now on: leave room for a chunk line and trailers.
    if (request_.chunked_) wanted += chunk_line_limit_ + options_.max_header_bytes;
  } else if (request_.content_length_) {
    wanted += static_cast<std::size_t>(*request_.content_length_);
  }
  grow(std::min(wanted, max_capacity_));
  head_pinned_ = options_.stream_body;
}

void RequestReader::free_memory() noexcept {
  if (!between_requests()) return;
  request_start_ = parse_pos_ = end_ = head_end_ = 0;
  release();
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

ReadEvent RequestReader::next() {
  if (failed_) return ReadEvent::failed;
  if (phase_ == ReadPhase::complete) {
    if (!head_reported_) {
      head_reported_ = true;
      return ReadEvent::head;
    }
    return ReadEvent::complete;
  }
  if (phase_ == ReadPhase::idle) {
    // RFC 9112 2.2: ignore empty lines before a request-line (some clients send
    // a CRLF after a body). The idle timeout bounds a client that sends only these.
    const char* data = data_.get();
    while (end_ - parse_pos_ >= 2 && data[parse_pos_] == '\r' && data[parse_pos_ + 1] == '\n')
      parse_pos_ += 2;
    request_start_ = parse_pos_;
    if (parse_pos_ == end_ || (end_ - parse_pos_ == 1 && data[parse_pos_] == '\r')) {
      if (parse_pos_ == end_) request_start_ = parse_pos_ = end_ = 0;
      return ReadEvent::need_more;
    }
    request_.reset();
    parser_.emplace(options_, request_, chunk_line_limit_);
    head_end_ = 0;
    phase_ = ReadPhase::head;
    head_reported_ = false;
  }
  if (phase_ == ReadPhase::head) {
    const Parse head = parser_->scan_head(data_.get() + request_start_, end_ - request_start_);
    if (head == Parse::failed) return fail(parser_->failure());
    if (head == Parse::need_more) return ReadEvent::need_more;
    head_end_ = parse_pos_ = request_start_ + parser_->head_size();
    head_reported_ = true;
    if (!parser_->has_body()) {
      phase_ = ReadPhase::complete;
      return ReadEvent::head;
    }
    phase_ = ReadPhase::body;
    reserve_for_body();
    return ReadEvent::head;
  }
  // The body.
  if (parse_pos_ == end_) return ReadEvent::need_more;
  std::size_t used = 0;
  const Parse body = parser_->parse_body(data_.get() + parse_pos_, end_ - parse_pos_, used);
  parse_pos_ += used;
  if (body == Parse::failed) {
    callback_failed_ = parser_->callback_failed();
    return fail(parser_->failure());
  }
  if (body == Parse::need_more) return ReadEvent::need_more;
  phase_ = ReadPhase::complete;
  return ReadEvent::complete;
}

}  // namespace multinode::http::detail

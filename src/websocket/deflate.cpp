// permessage-deflate: the negotiation and the zlib streams (see deflate.hpp).
#include "websocket/deflate.hpp"

#include "http/text.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace multinode::websocket::detail {

// ---------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1; the syntax of RFC 6455 §9.1)

namespace {

using http::detail::iequals;
using http::detail::is_token_char;

struct Parameter {
  std::string_view name;
  bool has_value = false;
  std::string value;  // unquoted
};

struct Offer {
  std::string_view name;
  std::vector<Parameter> parameters;
};

class ExtensionParser {
 public:
  explicit ExtensionParser(std::string_view text) noexcept : text_(text) {}

  // The next extension of the list; false at the end, or at a syntax error
  // (error() tells which).
  bool next(Offer& offer) {
    offer.parameters.clear();
    for (;;) {
      skip_whitespace();
      if (at_ == text_.size()) return false;
      if (text_[at_] != ',') break;
      ++at_;  // empty list elements are allowed (RFC 9110 §5.6.1)
    }
    offer.name = token();
    if (offer.name.empty()) return syntax_error();
    for (;;) {
      skip_whitespace();
      if (at_ == text_.size()) return true;
      if (text_[at_] == ',') {
        ++at_;
        return true;
      }
      if (text_[at_] != ';') return syntax_error();
      ++at_;
      skip_whitespace();
      Parameter parameter;
      parameter.name = token();
      if (parameter.name.empty()) return syntax_error();
      skip_whitespace();
      if (at_ < text_.size() && text_[at_] == '=') {
        ++at_;
        skip_whitespace();
        parameter.has_value = true;
        if (at_ < text_.size() && text_[at_] == '"') {
          if (!quoted_string(parameter.value)) return syntax_error();
        } else {
          parameter.value = token();
          if (parameter.value.empty()) return syntax_error();
        }
      }
      offer.parameters.push_back(std::move(parameter));
    }
  }
  bool error() const noexcept { return error_; }

 private:
  bool syntax_error() noexcept {
    error_ = true;
    return false;
  }
  void skip_whitespace() noexcept {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t')) ++at_;
  }
  std::string_view token() noexcept {
    const std::size_t start = at_;
    while (at_ < text_.size() && is_token_char(text_[at_])) ++at_;
    return text_.substr(start, at_ - start);
  }
  // RFC 6455 §9.1: a quoted value, once unescaped, must be a token too.
  bool quoted_string(std::string& out) {
    ++at_;
    while (at_ < text_.size() && text_[at_] != '"') {
      if (text_[at_] == '\\') {
        if (++at_ == text_.size()) return false;
      }
      if (!is_token_char(text_[at_])) return false;
      out.push_back(text_[at_++]);
    }
    if (at_ == text_.size() || out.empty()) return false;
    ++at_;
    return true;
  }

  std::string_view text_;
  std::size_t at_ = 0;
  bool error_ = false;
};

// A window size parameter's value: an integer from 8 to 15 (RFC 7692 §7.1.2), no sign, no leading zero.
bool window_bits_value(std::string_view value, int& bits) noexcept {
  if (value.empty() || value.size() > 2 || value[0] == '0') return false;
  int parsed = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    parsed = parsed * 10 + (c - '0');
  }
  if (parsed < 8 || parsed > 15) return false;
  bits = parsed;
  return true;
}

std::optional<DeflateAgreement> accept_offer(const Offer& offer, const Options& options) {
  // zlib's raw deflate cannot use a 256-byte window (8 bits): 9 is our least.
  const int ours = std::clamp(options.deflate_window_bits, 9, 15);
  DeflateParameters agreed;
  agreed.server_no_context_takeover = !options.deflate_context_takeover;
  agreed.client_no_context_takeover = !options.deflate_context_takeover;
  agreed.server_max_window_bits = ours;
  bool seen_server_no_context = false;
  bool seen_client_no_context = false;
  bool server_bits_offered = false;
  bool client_bits_offered = false;
  int client_bits = 15;
  for (const Parameter& parameter : offer.parameters) {
    if (parameter.name == "server_no_context_takeover") {
      if (seen_server_no_context || parameter.has_value) return std::nullopt;
      seen_server_no_context = true;
      agreed.server_no_context_takeover = true;
    } else if (parameter.name == "client_no_context_takeover") {
      if (seen_client_no_context || parameter.has_value) return std::nullopt;
      seen_client_no_context = true;
      agreed.client_no_context_takeover = true;
    } else if (parameter.name == "server_max_window_bits") {
      int bits = 0;
      if (server_bits_offered || !parameter.has_value || !window_bits_value(parameter.value, bits))
        return std::nullopt;
      server_bits_offered = true;
      if (bits < 9) return std::nullopt;  // we cannot compress within 256 bytes: decline
      agreed.server_max_window_bits = std::min(bits, ours);
    } else if (parameter.name == "client_max_window_bits") {
      if (client_bits_offered) return std::nullopt;
      client_bits_offered = true;
      if (parameter.has_value && !window_bits_value(parameter.value, client_bits)) return std::nullopt;
    } else {
      return std::nullopt;  // a parameter RFC 7692 does not define
    }
  }
  // Without client_max_window_bits in the offer the client may use up to 15 bits,
  // and the response may not name it (§7.1.2.2).
  agreed.client_max_window_bits = client_bits_offered ? std::min(client_bits, ours) : 15;

  DeflateAgreement agreement{agreed, "permessage-deflate"};
  if (agreed.server_no_context_takeover) agreement.response += "; server_no_context_takeover";
  if (agreed.client_no_context_takeover) agreement.response += "; client_no_context_takeover";
  if (server_bits_offered || agreed.server_max_window_bits < 15)
    agreement.response += "; server_max_window_bits=" + std::to_string(agreed.server_max_window_bits);
  if (client_bits_offered)
    agreement.response += "; client_max_window_bits=" + std::to_string(agreed.client_max_window_bits);
  return agreement;
}

}  // namespace

std::optional<DeflateAgreement> negotiate_deflate(std::string_view offers, const Options& options) {
  ExtensionParser parser(offers);
  Offer offer;
  std::optional<DeflateAgreement> chosen;
  while (parser.next(offer)) {
    if (chosen || !iequals(offer.name, "permessage-deflate")) continue;
    chosen = accept_offer(offer, options);
  }
  // A header we cannot read is not half-trusted: no extension at all.
  if (parser.error()) return std::nullopt;
  return chosen;
}

// ---------------------------------------------------------------------------
// zlib streams

// A z_stream whose allocations are counted (held_bytes), so that tests and the
// documentation can say what a connection holds. Ended when destroyed.
struct ZlibStream {
  ZlibStream(bool deflating, int window_bits, int memory_level) noexcept
      : deflating(deflating), window_bits(window_bits), memory_level(memory_level) {}
  ZlibStream(const ZlibStream&) = delete;
  ZlibStream& operator=(const ZlibStream&) = delete;
  ~ZlibStream() {
    if (!initialized) return;
    if (deflating)
      deflateEnd(&z);
    else
      inflateEnd(&z);
  }

  z_stream z{};
  std::size_t bytes = 0;
  bool deflating;
  bool initialized = false;
  int window_bits;
  int memory_level;
};

namespace {

// Each block carries its size in front, so that zfree can count it back.
constexpr std::size_t block_header = alignof(std::max_align_t);

voidpf counted_alloc(voidpf opaque, uInt items, uInt size) {
  const std::size_t bytes = static_cast<std::size_t>(items) * size;
  auto* block = static_cast<unsigned char*>(std::malloc(bytes + block_header));
  if (block == nullptr) return Z_NULL;
  std::memcpy(block, &bytes, sizeof bytes);
  static_cast<ZlibStream*>(opaque)->bytes += bytes + block_header;
  return block + block_header;
}

void counted_free(voidpf opaque, voidpf address) {
  if (address == Z_NULL) return;
  auto* block = static_cast<unsigned char*>(address) - block_header;
  std::size_t bytes = 0;
  std::memcpy(&bytes, block, sizeof bytes);
  static_cast<ZlibStream*>(opaque)->bytes -= bytes + block_header;
  std::free(block);
}

// A new stream, or nullptr when there is no memory for it.
std::unique_ptr<ZlibStream> open_stream(bool deflating, int window_bits, int memory_level) noexcept {
  std::unique_ptr<ZlibStream> stream(new (std::nothrow) ZlibStream(deflating, window_bits, memory_level));
  if (!stream) return nullptr;
  stream->z.zalloc = counted_alloc;
  stream->z.zfree = counted_free;
  stream->z.opaque = stream.get();
  const int status = deflating ? deflateInit2(&stream->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits,
                                              memory_level, Z_DEFAULT_STRATEGY)
                               : inflateInit2(&stream->z, -window_bits);
  if (status != Z_OK) return nullptr;
  stream->initialized = true;
  return stream;
}

// A stream that takes no context over from one message to the next carries
// nothing between messages: the connections of a thread share such streams. A
// connection borrows one for a message (a compressed message's frames, or one
// send) and gives it back, reset, at the message's end; a few idle ones are kept
// per thread (one of each kind serves a thread whose handlers do not interleave
// fragmented messages). So, without context takeover, zlib's memory is per
// thread, not per connection.
class StreamPool {
 public:
  StreamPool() = default;
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;
  ~StreamPool() { gone() = true; }

  static StreamPool& of_this_thread() {
    thread_local StreamPool pool;
    return pool;
  }
  // True once this thread's pool is destroyed (at the thread's exit): a stream
  // given back after that is simply ended.
  static bool& gone() {
    thread_local bool destroyed = false;  // trivially destructible: usable to the end
    return destroyed;
  }

  std::unique_ptr<ZlibStream> take(bool deflating, int window_bits, int memory_level) noexcept {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if ((*it)->deflating == deflating && (*it)->window_bits == window_bits &&
          (*it)->memory_level == memory_level) {
        std::unique_ptr<ZlibStream> stream = std::move(*it);
        idle_.erase(it);
        return stream;
      }
    }
    return open_stream(deflating, window_bits, memory_level);
  }
  // A stream reset for its next message.
  void give_back(std::unique_ptr<ZlibStream> stream) noexcept {
    if (idle_.size() >= max_idle) return;  // ended here
    try {
      idle_.push_back(std::move(stream));
    } catch (const std::bad_alloc&) {
      // ended by its unique_ptr
    }
  }

 private:
  static constexpr std::size_t max_idle = 4;
  std::vector<std::unique_ptr<ZlibStream>> idle_;
};

std::unique_ptr<ZlibStream> borrow(bool deflating, int window_bits, int memory_level) noexcept {
  if (StreamPool::gone()) return open_stream(deflating, window_bits, memory_level);
  return StreamPool::of_this_thread().take(deflating, window_bits, memory_level);
}

void give_back(std::unique_ptr<ZlibStream> stream) noexcept {
  if (!StreamPool::gone()) StreamPool::of_this_thread().give_back(std::move(stream));
}

// zlib counts in uInt: a larger buffer goes in pieces.
constexpr std::size_t max_piece = std::size_t{1} << 30;

}  // namespace

Inflater::Inflater(int window_bits, bool reset_each_message) noexcept
    // zlib 1.2.9 and later compress with 9 bits when asked for 8 (what a zlib-based
    // client does when told 8): inflating with at least 9 reads both.
    : window_bits_(std::clamp(window_bits, 9, 15)), reset_each_message_(reset_each_message) {}

Inflater::~Inflater() = default;

void Inflater::release() noexcept {
  stream_.reset();  // not given back: it may be in the middle of a message
}

void Inflater::release_if_idle() noexcept {
  if (reset_each_message_) release();
}

std::size_t Inflater::held_bytes() const noexcept {
  return stream_ ? stream_->bytes + sizeof(ZlibStream) : 0;
}

Inflater::Result Inflater::inflate(const unsigned char* data, std::size_t size, std::string& out,
                                   std::size_t limit, Utf8Validator* utf8) {
  if (!stream_) {
    stream_ = reset_each_message_ ? borrow(false, window_bits_, 0) : open_stream(false, window_bits_, 0);
    if (!stream_) return Result::no_memory;
  }
  z_stream& z = stream_->z;
  // Output grows by steps, never past limit + 1 bytes: the byte past the limit
  // tells that the message is too big (a zip bomb costs no more than that).
  const std::size_t cap = limit == SIZE_MAX ? limit : limit + 1;
  for (;;) {
    const std::size_t piece = std::min(size, max_piece);
    z.next_in = const_cast<Bytef*>(data);  // NOLINT: zlib's API is not const (it does not write)
    z.avail_in = static_cast<uInt>(piece);
    int status = Z_OK;
    do {
      const std::size_t used = out.size();
      if (used >= cap) return Result::too_big;
      const std::size_t step =
          std::min({cap - used, std::max<std::size_t>(used, std::size_t{16} * 1024), max_piece});
      out.resize(used + step);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      z.avail_out = static_cast<uInt>(step);
      status = ::inflate(&z, Z_SYNC_FLUSH);
      out.resize(used + (step - z.avail_out));
      // Bad text within the limit first, then the limit, then zlib's verdict: the
      // order of the output bytes decides, whatever the steps were.
      if (utf8 != nullptr && out.size() > used &&
          !utf8->feed(reinterpret_cast<const unsigned char*>(out.data()) + used,
                      std::min(out.size(), limit) - std::min(used, limit)))
        return Result::not_utf8;
      if (out.size() > limit) return Result::too_big;
      if (status == Z_STREAM_END) {
        // A final block (BFINAL) ends zlib's stream but not the message: what follows
        // starts a new one (§7.2.3.1 lets a sender end with one).
        if (inflateReset(&z) != Z_OK) return Result::corrupt;
        status = Z_OK;
      } else if (status == Z_DATA_ERROR || status == Z_NEED_DICT || status == Z_STREAM_ERROR) {
        return Result::corrupt;
      } else if (status == Z_MEM_ERROR) {
        return Result::no_memory;
      }
      // Z_OK or Z_BUF_ERROR: go on while there is input, or while output filled up.
    } while (z.avail_in > 0 || z.avail_out == 0);
    data += piece;
    size -= piece;
    if (size == 0) return Result::ok;
  }
}

Inflater::Result Inflater::finish_message(std::string& out, std::size_t limit, Utf8Validator* utf8) {
  static constexpr unsigned char tail[4] = {0x00, 0x00, 0xFF, 0xFF};
  Result result = inflate(tail, sizeof tail, out, limit, utf8);
  if (result == Result::ok && utf8 != nullptr && !utf8->complete()) result = Result::not_utf8;
  if (result == Result::ok && reset_each_message_) {
    // The next message starts afresh: the stream goes back to the thread's pool.
    if (inflateReset(&stream_->z) == Z_OK)
      give_back(std::move(stream_));
    else
      stream_.reset();
  }
  return result;
}

Deflater::Deflater(int window_bits, int memory_level, bool reset_each_message, std::size_t threshold) noexcept
    : threshold_(threshold),
      window_bits_(std::clamp(window_bits, 9, 15)),
      memory_level_(std::clamp(memory_level, 1, 9)),
      reset_each_message_(reset_each_message) {}

Deflater::~Deflater() = default;

void Deflater::release() noexcept {
  stream_.reset();
}

void Deflater::release_if_idle() noexcept {
  if (reset_each_message_) release();
}

std::size_t Deflater::held_bytes() const noexcept {
  return stream_ ? stream_->bytes + sizeof(ZlibStream) : 0;
}

bool Deflater::compress(std::string_view data, std::string& out) {
  // Without context takeover a message borrows the thread's stream for the call.
  std::unique_ptr<ZlibStream> borrowed;
  ZlibStream* stream = stream_.get();
  if (reset_each_message_) {
    borrowed = borrow(true, window_bits_, memory_level_);
    stream = borrowed.get();
  } else if (!stream) {
    stream_ = open_stream(true, window_bits_, memory_level_);
    stream = stream_.get();
  }
  if (stream == nullptr) return false;
  z_stream& z = stream->z;
  out.clear();
  std::size_t offset = 0;
  for (;;) {
    const std::size_t piece = std::min(data.size() - offset, max_piece);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + offset));  // NOLINT: not written
    z.avail_in = static_cast<uInt>(piece);
    offset += piece;
    const int flush = offset == data.size() ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    do {
      const std::size_t used = out.size();
      const std::size_t step = std::max<std::size_t>(piece / 2 + 64, 1024);
      out.resize(used + step);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      z.avail_out = static_cast<uInt>(step);
      const int status = ::deflate(&z, flush);
      out.resize(used + (step - z.avail_out));
      if (status != Z_OK && status != Z_BUF_ERROR) {
        // Its state is unknown: ended (a kept stream comes back new at the next message).
        if (!reset_each_message_) release();
        return false;
      }
    } while (z.avail_out == 0 || z.avail_in > 0);
    if (flush == Z_SYNC_FLUSH) break;
  }
  // A sync flush ends with an empty stored block, 00 00 ff ff: the receiver adds it back.
  if (out.size() >= 4 && out.compare(out.size() - 4, 4, "\x00\x00\xff\xff", 4) == 0)
    out.resize(out.size() - 4);
  if (reset_each_message_ && deflateReset(&z) == Z_OK) give_back(std::move(borrowed));
  return true;
}

}  // namespace multinode::websocket::detail

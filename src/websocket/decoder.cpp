// The frame decoder and encoder (see decoder.hpp).
#include "websocket/decoder.hpp"

#include <cstring>

namespace multinode::websocket::detail {

namespace {

// Unmasks bytes that start `offset` bytes into a frame's payload.
void unmask(char* data, std::size_t size, const unsigned char frame_key[4], std::size_t offset) noexcept {
  const unsigned char key[4] = {frame_key[offset % 4], frame_key[(offset + 1) % 4],
                                frame_key[(offset + 2) % 4], frame_key[(offset + 3) % 4]};
  std::size_t i = 0;
  if (size >= 8) {
    std::uint64_t word_key;
    unsigned char key8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    std::memcpy(&word_key, key8, 8);
    for (; i + 8 <= size; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, data + i, 8);
      word ^= word_key;
      std::memcpy(data + i, &word, 8);
    }
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[i % 4]);
}

bool is_control(unsigned opcode) noexcept {
  return (opcode & 0x8) != 0;
}

}  // namespace

bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// A failed inflate's close code and reason.
std::size_t Decoder::fail_inflate(Inflater::Result result, std::size_t consumed) noexcept {
  switch (result) {
    case Inflater::Result::too_big:
      return fail(close_code::message_too_big, "message larger than max_message_bytes once inflated",
                  consumed);
    case Inflater::Result::not_utf8:
      return fail(close_code::invalid_payload, "text message is not UTF-8", consumed);
    case Inflater::Result::corrupt:
      return fail(close_code::invalid_payload, "compressed message that does not inflate (bad deflate data)",
                  consumed);
    case Inflater::Result::no_memory:
    case Inflater::Result::ok:
      break;
  }
  return fail(close_code::internal_error, "no memory to inflate a message", consumed);
}

bool Decoder::take_payload(char* payload, std::size_t from, std::size_t to, const unsigned char key[4]) {
  unmask(payload + from, to - from, key, from);
  const auto* bytes = reinterpret_cast<const unsigned char*>(payload);
  if (compressed_) {
    const Inflater::Result result = inflater_->inflate(bytes + from, to - from, message_, max_message_bytes_,
                                                       kind_ == Kind::text ? &utf8_ : nullptr);
    if (result == Inflater::Result::ok) return true;
    fail_inflate(result, 0);
    return false;
  }
  if (kind_ == Kind::text && !utf8_.feed(bytes + from, to - from)) {
    fail(close_code::invalid_payload, "text message is not UTF-8", 0);
    return false;
  }
  return true;
}

std::size_t Decoder::decode(char* data, std::size_t size, DecoderSink& sink) {
  std::size_t consumed = 0;
  while (!closed_ && failure_ == 0) {
    const std::size_t available = size - consumed;
    char* frame = data + consumed;
    if (available < 2) break;
    const auto b0 = static_cast<unsigned char>(frame[0]);
    const auto b1 = static_cast<unsigned char>(frame[1]);
    const bool fin = (b0 & 0x80) != 0;
    const bool rsv1 = (b0 & 0x40) != 0;
    const unsigned opcode = b0 & 0x0F;
    if ((b0 & 0x30) != 0 || (rsv1 && !inflater_))
      return fail(close_code::protocol_error,
                  inflater_ ? "RSV2 or RSV3 set (no extension negotiated them)"
                            : "reserved bits set (no extension negotiated)",
                  consumed);
    if (opcode > 0x2 && opcode != 0x8 && opcode != 0x9 && opcode != 0xA)
      return fail(close_code::protocol_error, "reserved opcode", consumed);
    if (rsv1 && is_control(opcode))
      return fail(close_code::protocol_error, "RSV1 set on a control frame", consumed);
    if (rsv1 && opcode == 0x0)
      return fail(close_code::protocol_error,
                  "RSV1 set on a continuation frame (only a message's first frame carries it)", consumed);
    if ((b1 & 0x80) == 0) return fail(close_code::protocol_error, "unmasked frame from a client", consumed);
    std::uint64_t length = b1 & 0x7F;
    std::size_t header = 2;
    if (is_control(opcode)) {
      if (!fin) return fail(close_code::protocol_error, "fragmented control frame", consumed);
      if (length > 125)
        return fail(close_code::protocol_error, "control frame payload over 125 bytes", consumed);
    }
    if (length == 126) {
      if (available < 4) break;
      length =
          (std::uint64_t{static_cast<unsigned char>(frame[2])} << 8) | static_cast<unsigned char>(frame[3]);
      header = 4;
    } else if (length == 127) {
      if (available < 10) break;
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | static_cast<unsigned char>(frame[2 + i]);
      if ((length >> 63) != 0)
        return fail(close_code::protocol_error, "payload length with its high bit set", consumed);
      header = 10;
    }
    if (opcode == 0x0 && !fragmented_)
      return fail(close_code::protocol_error, "continuation frame outside a fragmented message", consumed);
    if ((opcode == 0x1 || opcode == 0x2) && fragmented_)
      return fail(close_code::protocol_error, "new data frame inside a fragmented message", consumed);
    if (!is_control(opcode)) {
      // A compressed frame is bounded by itself (what it inflates to is bounded as it
      // is inflated); an uncompressed one with what its message holds already.
      const bool compressed = opcode == 0x0 ? compressed_ : rsv1;
      const std::uint64_t held = opcode == 0x0 && !compressed ? message_.size() : 0;
      if (length > max_message_bytes_ || held + length > max_message_bytes_)
        return fail(close_code::message_too_big, "message larger than max_message_bytes", consumed);
    }
    if (available - header < 4) break;
    unsigned char key[4];
    std::memcpy(key, frame + header, 4);
    header += 4;
    char* payload = frame + header;
    const auto payload_size = static_cast<std::size_t>(length);

    if (!is_control(opcode)) {
      if (opcode != 0x0 && seen_ == 0) {  // a message's first frame
        kind_ = opcode == 0x1 ? Kind::text : Kind::binary;
        compressed_ = rsv1;
        utf8_.reset();
        if (compressed_) message_.clear();
      }
      if (available - header < length) {
        // Cut: what arrived of text (or of a compressed message) is looked at now,
        // so that a byte that cannot be UTF-8 fails at once. Binary waits, unmasked
        // in one pass when whole.
        const std::size_t have = available - header;
        if ((compressed_ || kind_ == Kind::text) && have > seen_) {
          if (!take_payload(payload, seen_, have, key)) return consumed;
          seen_ = have;
        }
        break;
      }
      if (!take_payload(payload, seen_, payload_size, key)) return consumed;
      seen_ = 0;
      consumed += header + payload_size;
      const std::string_view view(payload, payload_size);
      if (compressed_) {
        fragmented_ = !fin;
        if (!fin) continue;
        const Inflater::Result result =
            inflater_->finish_message(message_, max_message_bytes_, kind_ == Kind::text ? &utf8_ : nullptr);
        if (result != Inflater::Result::ok) return fail_inflate(result, consumed);
        compressed_ = false;
        sink.on_message(message_, kind_);
        message_.clear();
        continue;
      }
      if (opcode != 0x0) {
        if (fin) {
          if (kind_ == Kind::text && !utf8_.complete())
            return fail(close_code::invalid_payload, "text message is not UTF-8", consumed);
          sink.on_message(view, kind_);
          continue;
        }
        fragmented_ = true;
        message_.assign(view);
        continue;
      }
      message_.append(view);
      if (!fin) continue;
      if (kind_ == Kind::text && !utf8_.complete())
        return fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence", consumed);
      fragmented_ = false;
      sink.on_message(message_, kind_);
      message_.clear();
      continue;
    }

    if (available - header < length) break;  // a control frame is taken whole
    unmask(payload, payload_size, key, 0);
    consumed += header + payload_size;
    const std::string_view view(payload, payload_size);
    const auto* bytes = reinterpret_cast<const unsigned char*>(payload);
    switch (static_cast<Opcode>(opcode)) {
      case Opcode::close: {
        if (payload_size == 1)
          return fail(close_code::protocol_error, "close frame with a 1-byte payload", consumed);
        std::uint16_t code = close_code::no_status;
        std::string_view reason;
        if (payload_size >= 2) {
          code = static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
          if (!is_valid_close_code(code))
            return fail(close_code::protocol_error, "invalid close code", consumed);
          reason = view.substr(2);
          if (!is_utf8(reason.data(), reason.size()))
            return fail(close_code::invalid_payload, "close reason is not UTF-8", consumed);
        }
        closed_ = true;
        sink.on_close_frame(code, reason);
        return consumed;
      }
      case Opcode::ping:
        sink.on_ping(view);
        break;
      case Opcode::pong:
        sink.on_pong(view);
        break;
      default:
        break;
    }
  }
  return consumed;
}

void Decoder::free_memory() noexcept {
  if (!between_messages()) return;
  std::string().swap(message_);
  if (inflater_) inflater_->release_if_idle();
}

void Decoder::release_all() noexcept {
  std::string().swap(message_);
  if (inflater_) inflater_->release();
}

void write_header(char* out, Opcode opcode, std::size_t payload, bool compressed) noexcept {
  out[0] = static_cast<char>(0x80 | (compressed ? 0x40 : 0) | static_cast<unsigned>(opcode));
  if (payload < 126) {
    out[1] = static_cast<char>(payload);
  } else if (payload <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<char>(payload >> 8);
    out[3] = static_cast<char>(payload);
  } else {
    out[1] = 127;
    const auto length = static_cast<std::uint64_t>(payload);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>(length >> (56 - 8 * i));
  }
}

std::string encode_frame(Opcode opcode, std::string_view payload) {
  std::string frame(header_size(payload.size()) + payload.size(), '\0');
  write_header(frame.data(), opcode, payload.size());
  if (!payload.empty())
    std::memcpy(frame.data() + header_size(payload.size()), payload.data(), payload.size());
  return frame;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  if (reason.size() > 123) {
    std::size_t cut = 123;
    // Back to the start of a code point: continuation bytes are 10xxxxxx.
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  payload.append(reason);
  return payload;
}

}  // namespace multinode::websocket::detail

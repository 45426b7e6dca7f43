// Framed streams: the framer that decodes frames in the stream's read buffer,
// and the sending of text, binary and JSON frames straight into its write queue.
#include <multinode/frame.hpp>

#include "common/log.hpp"
#include "ipc/frame_codec.hpp"
#include "ipc/stream_state.hpp"

#include <boost/json/serializer.hpp>

#include <cstring>
#include <stdexcept>

namespace multinode {

Message::Message(const Message& other)
    : kind_(other.kind_),
      owned_(true),
      storage_(other.bytes()),
      json_(other.json_, boost::json::storage_ptr()) {}

Message& Message::operator=(const Message& other) {
  if (this != &other) {
    Message copy(other);
    *this = std::move(copy);
  }
  return *this;
}

namespace detail {

struct FramedState final : StreamReader {
  FramedState(StreamState& stream, const FrameOptions& options) : stream_(&stream), decoder_(options) {}

  // --- StreamReader ---
  void read(ByteQueue& in) override {
    if (std::error_code error = decoder_.decode(in, *this)) reject(error);
  }
  std::size_t bytes_needed() const noexcept override { return decoder_.bytes_needed(); }
  bool wants_data() const noexcept override { return bool(on_message_) && !closing_; }
  void stream_closed(std::error_code code) override {
    on_close_(code);
    drop_handlers();  // they often hold handles to this stream
  }
  void stream_drained() override { on_drain_(); }
  void destroy_io_objects() noexcept override { drop_handlers(); }

  void drop_handlers() noexcept {
    on_message_.clear();
    on_close_.clear();
    on_drain_.clear();
  }

  // --- FrameDecoder sink ---
  bool on_message(const Message& message) {
    on_message_(message);
    return stream_->can_read();
  }
  bool on_close_frame(std::uint16_t code, std::string_view reason) {
    if (code == close_normal) {
      stream_->close_with(errc::peer_closed);
    } else {
      detail::log(LogLevel::warning, "stream to node ", stream_->peer(),
                  " closed by the peer because of a frame from", " this process: ", reason, " (close code ",
                  code, ")");
      stream_->close_with(errc::rejected_by_peer);
    }
    return false;
  }

  void reject(std::error_code error) {
    if (stream_->is_closed()) return;
    detail::log(LogLevel::warning, "closing the stream to node ", stream_->peer(), ": ", error.message());
    // Tell the peer why, so that its side names the cause. One attempt only: a
    // peer that sends garbage may not read either.
    if (stream_->write_side_open()) {
      append_close_frame(stream_->write_queue(), close_code_for(error), error.message());
      stream_->flush_once();
    }
    stream_->close_with(error);
  }

  // --- sending ---
  bool send_frame(FrameType type, std::string_view payload, std::error_code& error) {
    error.clear();
    if (!stream_->writable()) return false;
    if (payload.size() > decoder_.options().max_frame_size) {
      error = errc::frame_too_large;
      return false;
    }
    ByteQueue& out = stream_->write_queue();
    char* p = out.prepare(frame_header_size + payload.size());
    write_frame_header(p, type, static_cast<std::uint32_t>(payload.size()));
    if (!payload.empty()) std::memcpy(p + frame_header_size, payload.data(), payload.size());
    out.commit(frame_header_size + payload.size());
    return stream_->queued();
  }

  bool send_text(std::string_view text, std::error_code& error) {
    // The peer would close the whole stream over one bad text frame: refuse it here.
    if (!is_valid_utf8(text)) {
      error = errc::invalid_utf8;
      return false;
    }
    return send_frame(FrameType::text, text, error);
  }

  bool send_json(const boost::json::value& value, std::error_code& error) {
    error.clear();
    if (!stream_->writable()) return false;
    // Serialised straight into the write queue behind a header whose length is
    // filled in afterwards: no temporary string.
    ByteQueue& out = stream_->write_queue();
    std::size_t start = out.size();
    out.prepare(frame_header_size + 64);
    out.commit(frame_header_size);
    serializer_.reset(&value);
    while (!serializer_.done()) {
      char* p = out.prepare(256);
      std::size_t written = serializer_.read(p, out.tail_room()).size();
      out.commit(written);
    }
    std::size_t length = out.size() - start - frame_header_size;
    const char* payload = out.data() + start + frame_header_size;
    if (length > decoder_.options().max_frame_size) error = errc::frame_too_large;
    // Boost.JSON strings may hold bytes that are not UTF-8; the peer would reject the frame.
    else if (!is_valid_utf8(payload, length))
      error = errc::invalid_utf8;
    if (error) {
      out.truncate(start);
      return false;
    }
    write_frame_header(out.data() + start, FrameType::json, static_cast<std::uint32_t>(length));
    return stream_->queued();
  }

  bool send(const Message& message, std::error_code& error) {
    switch (message.kind()) {
      case Message::Kind::text:
        return send_text(message.bytes(), error);
      case Message::Kind::binary:
        return send_frame(FrameType::binary, message.bytes(), error);
      case Message::Kind::json:
        return send_json(message.json_value(), error);
    }
    return false;
  }

  void close() {
    if (!stream_->open_for_reading()) return;  // closed, or closing already
    closing_ = true;
    if (stream_->write_side_open()) append_close_frame(stream_->write_queue(), close_normal, {});
    stream_->close_when_flushed(errc::stream_closed);
  }

  StreamState* stream_;  // owns this
  FrameDecoder decoder_;
  boost::json::serializer serializer_;
  Callback<void(const Message&)> on_message_;
  Callback<void(std::error_code)> on_close_;
  Callback<void()> on_drain_;
  bool closing_ = false;
};

namespace {
bool throw_if(bool result, std::error_code error) {
  if (error) throw std::system_error(error, "multinode::FramedStream::send");
  return result;
}
}  // namespace

}  // namespace detail

NodeId FramedStream::peer_id() const noexcept {
  return stream_.peer_id();
}
unsigned FramedStream::peer_slot() const noexcept {
  return stream_.peer_slot();
}
bool FramedStream::is_open() const noexcept {
  return state_ && !state_->closing_ && stream_.is_open();
}
const FrameOptions& FramedStream::options() const noexcept {
  static const FrameOptions defaults;
  return state_ ? state_->decoder_.options() : defaults;
}

bool FramedStream::send(const Message& message, std::error_code& error) {
  error.clear();
  return state_ && state_->send(message, error);
}
bool FramedStream::send_text(std::string_view text, std::error_code& error) {
  error.clear();
  return state_ && state_->send_text(text, error);
}
bool FramedStream::send_binary(std::string_view bytes, std::error_code& error) {
  error.clear();
  return state_ && state_->send_frame(detail::FrameType::binary, bytes, error);
}
bool FramedStream::send_json(const boost::json::value& value, std::error_code& error) {
  error.clear();
  return state_ && state_->send_json(value, error);
}

bool FramedStream::send(const Message& message) {
  std::error_code error;
  bool result = send(message, error);
  return detail::throw_if(result, error);
}
bool FramedStream::send_text(std::string_view text) {
  std::error_code error;
  bool result = send_text(text, error);
  return detail::throw_if(result, error);
}
bool FramedStream::send_binary(std::string_view bytes) {
  std::error_code error;
  bool result = send_binary(bytes, error);
  return detail::throw_if(result, error);
}
bool FramedStream::send_json(const boost::json::value& value) {
  std::error_code error;
  bool result = send_json(value, error);
  return detail::throw_if(result, error);
}

std::size_t FramedStream::buffered_amount() const noexcept {
  return stream_.buffered();
}

void FramedStream::close() {
  if (state_) state_->close();
}

void FramedStream::on_message(std::function<void(const Message&)> handler) {
  if (!state_ || state_->stream_->io_objects_destroyed()) return;
  state_->on_message_.set(std::move(handler));
  state_->stream_->reading_changed();
}

void FramedStream::on_close(std::function<void(std::error_code)> handler) {
  if (state_) state_->stream_->set_close_handler(state_->on_close_, std::move(handler));
}

void FramedStream::on_drain(std::function<void()> handler) {
  if (state_ && !state_->stream_->io_objects_destroyed()) state_->on_drain_.set(std::move(handler));
}

FramedStream frame_stream(Stream stream, const FrameOptions& options) {
  if (!stream) throw std::invalid_argument("multinode::frame_stream: empty stream");
  detail::StreamState& state = *detail::StreamAccess::state(stream);
  // The stream's only framer is a FramedState.
  auto framed = std::static_pointer_cast<detail::FramedState>(state.framer());
  if (!framed) {
    if (options.max_frame_size > detail::max_frame_size_limit) {
      throw std::invalid_argument("multinode::frame_stream: max_frame_size is above 4 GiB - 1");
    }
    framed = std::make_shared<detail::FramedState>(state, options);
    state.set_framer(framed);
  }
  return FramedStream(std::move(stream), std::move(framed));
}

FramedStream frame_stream(Stream stream, std::size_t max_frame_size) {
  FrameOptions options;
  options.max_frame_size = max_frame_size;
  return frame_stream(std::move(stream), options);
}

}  // namespace multinode

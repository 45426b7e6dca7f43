// Framed messages over a peer stream, in the WebSocket style of the original's
// frameStream(): send(text | binary | JSON) and a message event.
#pragma once

#include <multinode/stream.hpp>

#include <boost/json/value.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace multinode {

// One framed value: text (valid UTF-8), binary bytes, or a JSON value.
class Message {
 public:
  enum class Kind : std::uint8_t { text = 1, binary = 2, json = 3 };

  static Message text(std::string value) { return Message(Kind::text, std::move(value)); }
  static Message binary(std::string bytes) { return Message(Kind::binary, std::move(bytes)); }
  static Message json(boost::json::value value) {
    Message m(Kind::json, {});
    m.json_ = std::move(value);
    return m;
  }
  Message(const char* text) : Message(Kind::text, text) {}          // NOLINT: implicit on purpose
  Message(std::string_view text) : Message(Kind::text, std::string(text)) {}  // NOLINT
  Message(boost::json::value value) : Message(json(std::move(value))) {}     // NOLINT
  Message(boost::json::object value) : Message(json(std::move(value))) {}    // NOLINT

  Kind kind() const noexcept { return kind_; }
  bool is_text() const noexcept { return kind_ == Kind::text; }
  bool is_binary() const noexcept { return kind_ == Kind::binary; }
  bool is_json() const noexcept { return kind_ == Kind::json; }
  // Text or binary payload.
  const std::string& bytes() const noexcept { return bytes_; }
  const boost::json::value& json_value() const noexcept { return json_; }

 private:
  Message(Kind kind, std::string bytes) : kind_(kind), bytes_(std::move(bytes)) {}
  Kind kind_;
  std::string bytes_;
  boost::json::value json_;
};

namespace detail {
struct FramedState;
}

// A handle: copies refer to the same framed stream.
class FramedStream {
 public:
  FramedStream() = default;

  NodeId peer_id() const noexcept;
  unsigned peer_slot() const noexcept;
  bool is_open() const noexcept;

  // Queues one message; false when the stream is above its high-water mark
  // afterwards (the message is still queued) or already closed (it is not).
  bool send(const Message& message);
  bool send_text(std::string_view text);
  bool send_binary(std::string_view bytes);
  bool send_json(const boost::json::value& value);
  // Bytes queued and not yet sent, as the WebSocket API's bufferedAmount.
  std::size_t buffered_amount() const noexcept;
  void close();

  void on_message(std::function<void(const Message&)> handler);
  // The stream closed: the peer went away, close() was called, or a bad frame
  // arrived (the code names the cause: errc::frame_too_large, errc::invalid_utf8 ...).
  void on_close(std::function<void(std::error_code)> handler);
  void on_drain(std::function<void()> handler);

  Stream& stream() noexcept { return stream_; }

 private:
  friend FramedStream frame_stream(Stream stream, std::size_t max_frame_size);
  FramedStream(Stream stream, std::shared_ptr<detail::FramedState> state)
      : stream_(std::move(stream)), state_(std::move(state)) {}
  Stream stream_;
  std::shared_ptr<detail::FramedState> state_;
};

// Turns a peer stream into a framed one. Calling it again on the same stream
// returns the same framed stream. The stream's on_data belongs to the framer from then on.
FramedStream frame_stream(Stream stream, std::size_t max_frame_size = 16 * 1024 * 1024);

}  // namespace multinode

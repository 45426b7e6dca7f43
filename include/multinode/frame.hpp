// Framed messages over a peer stream, in the WebSocket style of the original's
// frameStream(): send(text | binary | JSON) and a message event. The bytes on
// the wire are described in docs/protocol.md ("Peer stream frames").
#pragma once

#include <multinode/options.hpp>
#include <multinode/stream.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace multinode {

namespace detail {
class FrameDecoder;
struct FramedState;
}  // namespace detail

// One framed value: text (valid UTF-8), binary bytes, or a JSON value.
//
// A message either owns its bytes or views bytes owned elsewhere. Received
// messages are views into the stream's read buffer (and their JSON values live
// in a per-stream arena): they are valid only during the on_message call, which
// is what makes receiving free of allocations. Copying a Message always makes
// an owning deep copy, so `Message kept = message;` inside the handler is safe;
// so is copying its json_value() (Boost.JSON copies share the arena, which then
// stays alive for the copy).
class Message {
 public:
  enum class Kind : std::uint8_t { text = 1, binary = 2, json = 3 };

  // Owning.
  static Message text(std::string value) { return Message(Kind::text, std::move(value)); }
  static Message binary(std::string bytes) { return Message(Kind::binary, std::move(bytes)); }
  static Message json(boost::json::value value) {
    Message m(Kind::json, std::string());
    m.json_ = std::move(value);
    return m;
  }
  // Views: no copy is made; the bytes must stay valid while the Message is used.
  static Message text_view(std::string_view value) noexcept { return Message(Kind::text, value); }
  static Message binary_view(std::string_view bytes) noexcept { return Message(Kind::binary, bytes); }

  // Implicit, so that send("hello") and send(json_object) read naturally. They copy.
  Message(const char* text) : Message(Kind::text, std::string(text)) {}       // NOLINT
  Message(std::string_view text) : Message(Kind::text, std::string(text)) {}  // NOLINT
  Message(std::string text) : Message(Kind::text, std::move(text)) {}         // NOLINT
  Message(boost::json::value value) : Message(json(std::move(value))) {}      // NOLINT
  Message(boost::json::object value) : Message(json(std::move(value))) {}     // NOLINT
  Message(boost::json::array value) : Message(json(std::move(value))) {}      // NOLINT

  // An owning deep copy (views and arena-backed JSON are copied into new storage).
  Message(const Message& other);
  Message& operator=(const Message& other);
  Message(Message&&) noexcept = default;
  Message& operator=(Message&&) noexcept = default;
  ~Message() = default;

  Kind kind() const noexcept { return kind_; }
  bool is_text() const noexcept { return kind_ == Kind::text; }
  bool is_binary() const noexcept { return kind_ == Kind::binary; }
  bool is_json() const noexcept { return kind_ == Kind::json; }
  // Text or binary payload (empty for JSON).
  std::string_view bytes() const noexcept { return owned_ ? std::string_view(storage_) : view_; }
  // The JSON value (null for text and binary).
  const boost::json::value& json_value() const noexcept { return json_; }
  // False for received messages and *_view() ones: they are valid only as long as what they view.
  bool owns_data() const noexcept { return owned_; }

 private:
  friend class detail::FrameDecoder;
  Message(Kind kind, std::string bytes) noexcept : kind_(kind), storage_(std::move(bytes)) {}
  Message(Kind kind, std::string_view view) noexcept : kind_(kind), owned_(false), view_(view) {}
  Message(boost::json::value&& value, bool owned) noexcept
      : kind_(Kind::json), owned_(owned), json_(std::move(value)) {}

  Kind kind_;
  bool owned_ = true;
  std::string storage_;
  std::string_view view_;
  boost::json::value json_;
};

// Limits on what a framed stream accepts from its peer.
struct FrameOptions {
  // Largest payload accepted (and sent); at most 4 GiB - 1. A larger frame
  // closes the stream with errc::frame_too_large. Options::max_frame_size sets it for the mesh.
  std::size_t max_frame_size = default_max_frame_size;
  // Deepest nesting of arrays and objects in a JSON frame; deeper closes the
  // stream with errc::invalid_json.
  std::size_t max_json_depth = 64;
};

// A handle: copies refer to the same framed stream.
class FramedStream {
 public:
  FramedStream() = default;

  NodeId peer_id() const noexcept;
  unsigned peer_slot() const noexcept;
  bool is_open() const noexcept;
  explicit operator bool() const noexcept { return state_ != nullptr; }

  // Queues one message. Returns false when the stream is at or above its
  // high-water mark afterwards (the message is still queued: wait for on_drain
  // before sending more), or when it is closed (the message is not queued).
  // Throws std::system_error for a message this side must not send: larger than
  // max_frame_size (errc::frame_too_large) or not UTF-8 (errc::invalid_utf8);
  // nothing is queued then.
  bool send(const Message& message);
  bool send_text(std::string_view text);
  bool send_binary(std::string_view bytes);
  bool send_json(const boost::json::value& value);
  // The same without exceptions: `error` says why a message was not queued.
  bool send(const Message& message, std::error_code& error);
  bool send_text(std::string_view text, std::error_code& error);
  bool send_binary(std::string_view bytes, std::error_code& error);
  bool send_json(const boost::json::value& value, std::error_code& error);

  // Bytes queued and not yet sent, as the WebSocket API's bufferedAmount.
  std::size_t buffered_amount() const noexcept;
  // Sends a close frame after what is queued, then closes; no message is
  // delivered after the call. on_close runs with errc::stream_closed once the
  // queued messages went out. The peer's on_close gets errc::peer_closed.
  void close();

  // Messages in the order they were sent; setting it starts reading. The
  // message and every view into it are valid during the call only (copy the
  // Message to keep it). A null handler pauses reading.
  void on_message(std::function<void(const Message&)> handler);
  // The stream closed: errc::peer_gone (the peer process ended the stream or went
  // away), errc::peer_closed (it called close()), errc::rejected_by_peer (it
  // rejected a frame from this side), errc::stream_closed (close() here), or
  // the frame error that made this side close it (errc::frame_too_large,
  // errc::invalid_utf8, errc::invalid_json, ...). Set on a closed stream, it is
  // called (from the event loop) with that code.
  void on_close(std::function<void(std::error_code)> handler);
  // The queued bytes fell below the high-water mark again after send() returned false.
  void on_drain(std::function<void()> handler);

  Stream& stream() noexcept { return stream_; }
  const FrameOptions& options() const noexcept;

 private:
  friend FramedStream frame_stream(Stream stream, const FrameOptions& options);
  FramedStream(Stream stream, std::shared_ptr<detail::FramedState> state)
      : stream_(std::move(stream)), state_(std::move(state)) {}
  Stream stream_;
  std::shared_ptr<detail::FramedState> state_;
};

// Turns a peer stream into a framed one. Calling it again on the same stream
// returns the same framed stream (the options of the first call hold). The
// stream's reading belongs to the framer from then on (Stream::on_data throws).
// It throws only for a misuse: an empty stream or a max_frame_size above
// 4 GiB - 1 (std::invalid_argument), a stream already read with on_data or
// async_read_some (std::logic_error). Nothing in the process's state can make
// it fail, so there is no std::error_code overload.
FramedStream frame_stream(Stream stream, const FrameOptions& options);
FramedStream frame_stream(Stream stream, std::size_t max_frame_size = default_max_frame_size);

}  // namespace multinode

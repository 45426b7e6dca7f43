// One WebSocket connection, taken over from the HTTP server (http/takeover.hpp):
// the public websocket::Connection and the server's TakenOver in one object.
//
// Memory per idle connection is the object itself (docs/websocket.md gives its
// size): reads go through one buffer per thread (the socket is waited on for
// readability, then read until a short read), so a connection holds input only
// for a frame that arrived in part, and gives it back once the frame is whole;
// the output buffer and the buffer of a reassembled message are given back when
// the server's sweep finds the connection idle. Timeouts (ping, pong, closing
// handshake) ride on that sweep: no timer per connection.
#pragma once

#include <multinode/http/takeover.hpp>
#include <multinode/websocket.hpp>

#include "http/output.hpp"
#include "websocket/decoder.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace multinode::websocket::detail {

class DeferredFlushes;

class Session final : public Connection,
                      public http::TakenOver,
                      public std::enable_shared_from_this<Session>,
                      private DecoderSink {
 public:
  // deflate: the permessage-deflate parameters agreed at the handshake, if any.
  Session(const Options& options, std::string subprotocol, const std::optional<DeflateParameters>& deflate);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // After Response::take_over(): the socket and what came with it. Delivery
  // starts once the caller (the handler that accepted) has returned.
  void start(http::Handover handover);

  // websocket::Connection
  bool send(std::string_view data, Kind kind) override;
  bool send(const Frame& frame) override;
  void close(std::uint16_t code, std::string_view reason) override;
  std::size_t buffered_amount() const noexcept override { return output_.size(); }
  bool is_open() const noexcept override { return state_ == State::open; }
  std::string_view subprotocol() const noexcept override { return subprotocol_; }
  void on_message(MessageHandler handler) override { on_message_ = std::move(handler); }
  void on_close(CloseHandler handler) override { on_close_ = std::move(handler); }
  void on_drain(std::function<void()> handler) override { on_drain_ = std::move(handler); }

  // http::TakenOver
  void on_server_stop() override;
  void check_deadlines(Clock::time_point now) override;
  void destroy_io_objects() noexcept override;

  // zlib's state this connection holds (permessage-deflate; 0 between messages
  // without context takeover).
  std::size_t deflate_held_bytes() const noexcept {
    return decoder_.inflater_held_bytes() + (deflater_ ? deflater_->held_bytes() : 0);
  }
  // Bytes of buffers this connection holds beyond the object (0 when idle).
  std::size_t held_bytes() const noexcept {
    return heap_bytes(pending_) + output_.held_bytes() + decoder_.held_bytes() +
           write_buffers_.capacity() * sizeof(boost::asio::const_buffer) +
           (deflater_ ? deflater_->held_bytes() : 0);
  }

 private:
  enum class State : std::uint8_t {
    open,      // messages both ways
    closing,   // our close frame is queued: waiting for the peer's (or the timeout)
    draining,  // both close frames exchanged: what is queued goes out, then the TCP close
    closed,    // socket closed, on_close delivered
  };

  // DecoderSink
  void on_message(std::string_view data, Kind kind) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close_frame(std::uint16_t code, std::string_view reason) override;

  void wait_readable();
  void on_readable();
  void on_bytes(char* data, std::size_t size);
  void queue_frame(Opcode opcode, std::string_view payload, bool compressed = false);
  void queue_data(std::string_view data, Kind kind);
  bool after_queue();
  void defer_flush();
  static void run_deferred_flushes(DeferredFlushes& pending);
  void flush();
  void wait_writable();
  void output_drained();
  void start_close(std::uint16_t code, std::string_view reason);
  void fail(std::uint16_t code, const char* reason);
  // Closes the socket and reports on_close (posted, unless report_now).
  void finish(bool report_now = false) noexcept;

  std::optional<boost::asio::ip::tcp::socket> socket_;
  std::shared_ptr<Session> self_;  // while not closed: the connection lives whether or not the user keeps it
  Decoder decoder_;
  std::string pending_;               // the start of a frame not whole yet
  http::detail::OutputQueue output_;  // frames in the order they go out, one writev per attempt
  std::vector<boost::asio::const_buffer> write_buffers_;  // capacity kept while busy, given back when idle
  MessageHandler on_message_;
  CloseHandler on_close_;
  std::function<void()> on_drain_;
  std::unique_ptr<Deflater> deflater_;  // permessage-deflate negotiated: our side of it
  std::string subprotocol_;
  std::string close_reason_;  // reported to on_close

  // The options this connection needs, copied (Options holds strings and vectors).
  std::size_t max_buffered_bytes_;
  std::size_t write_high_water_;
  Clock::duration ping_interval_;
  Clock::duration pong_timeout_;
  Clock::duration handshake_timeout_;

  Clock::time_point last_receive_{};  // as seen by the sweep
  Clock::time_point ping_sent_{};
  Clock::time_point close_deadline_{};
  std::uint16_t close_code_ = 0;  // reported to on_close; 0: none (1006)
  State state_ = State::open;
  bool reading_ = false;        // waiting for readability
  bool waiting_write_ = false;  // waiting for writability
  bool in_batch_ = false;       // decoding a read: sends are gathered into one write after it
  bool received_ = false;       // bytes came since the last sweep
  bool ping_outstanding_ = false;
  bool drain_wanted_ = false;    // a send returned false: on_drain once the output is written
  bool discard_input_ = false;   // after a protocol error: what the peer sends is not looked at
  bool shut_down_ = false;       // our side is shut down (after the close frame of a failure)
  bool flush_deferred_ = false;  // in this thread's deferred flush pass (session.cpp)
};

}  // namespace multinode::websocket::detail

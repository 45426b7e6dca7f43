// What a Stream handle refers to: the socket, both byte queues, the handlers,
// and the read and write loops on the process's io_context. Its fields are
// private; Stream, the framer (frame.cpp) and StreamService reach it through
// the named operations below.
#pragma once

#include <multinode/error.hpp>
#include <multinode/stream.hpp>

#include "common/intrusive_list.hpp"
#include "ipc/byte_queue.hpp"
#include "ipc/callback.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>

namespace multinode::detail {

class StreamService;

// The framer: reads the stream's buffer in place and hears the stream's events.
class StreamReader {
 public:
  // Consumes what it can from the front of `in`.
  virtual void read(ByteQueue& in) = 0;
  // Total bytes the incomplete unit at the front of the buffer needs, or 0.
  virtual std::size_t bytes_needed() const noexcept = 0;
  virtual bool wants_data() const noexcept = 0;
  virtual void stream_closed(std::error_code code) = 0;
  virtual void stream_drained() = 0;
  // The io_context is going away: drop every handler without calling it.
  virtual void destroy_io_objects() noexcept = 0;

 protected:
  ~StreamReader() = default;
};

class StreamState : public std::enable_shared_from_this<StreamState> {
 public:
  // Sizes chosen by measurement (docs/ipc.md): one read takes what a full
  // socket buffer holds; more is given back when idle.
  static constexpr std::size_t read_buffer_initial = std::size_t{64} * 1024;
  static constexpr std::size_t min_read_room = std::size_t{16} * 1024;
  static constexpr std::size_t read_buffer_keep = std::size_t{1024} * 1024;
  static constexpr std::size_t write_buffer_initial = std::size_t{64} * 1024;
  static constexpr int read_rounds_per_pass = 16;
  // Busy-polling: a poll that comes this much later than the one before means
  // the process lost its CPU (or the loop is busy with other work); polling then
  // pauses for a while. See wait_readable().
  static constexpr std::chrono::microseconds busy_poll_preempted{50};
  static constexpr std::chrono::milliseconds busy_poll_pause{20};

  StreamState(boost::asio::io_context& io, NodeId peer, unsigned peer_slot);
  ~StreamState();
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;

  // Gives the socket `fd` (on failure the caller still owns fd), then start().
  std::error_code assign(int fd);
  // Registers with the io_context and starts watching for the peer going away.
  void start();

  NodeId peer() const noexcept { return peer_; }
  unsigned peer_slot() const noexcept { return peer_slot_; }
  boost::asio::io_context::executor_type executor() const noexcept { return io_.get_executor(); }

  // --- the lifecycle ---
  // True from close() (or the peer's end, or a failure) on.
  bool is_closed() const noexcept { return phase_ >= Phase::closed; }
  // Open or ending: not closing and not closed. Only then does the stream read.
  bool open_for_reading() const noexcept { return phase_ <= Phase::ending; }
  // Bytes appended now still reach the peer: not closing or closed, and the
  // writing side not shut down yet (end() may be under way).
  bool write_side_open() const noexcept { return open_for_reading() && !write_shut_; }
  // The io_context is gone or going: handlers are no longer taken.
  bool io_objects_destroyed() const noexcept { return phase_ == Phase::io_objects_destroyed; }
  // From StreamService when the io_context shuts down.
  void destroy_io_objects() noexcept;

  // --- writing ---
  bool writable() const noexcept { return phase_ == Phase::open; }
  bool write(const char* bytes, std::size_t size);
  // The framer appends frames here directly (no copy), then calls queued().
  ByteQueue& write_queue() noexcept { return out_; }
  // After appending to the write queue: schedules the flush and returns whether
  // the queue is below the high-water mark.
  bool queued();
  std::size_t buffered() const noexcept { return out_.size(); }
  std::size_t high_water_mark() const noexcept { return high_water_mark_; }
  void set_high_water_mark(std::size_t bytes) noexcept;
  void end();
  // One send attempt without waiting, before closing for a bad frame.
  void flush_once() noexcept;

  // --- closing ---
  // Stops reading, sends what is queued, then closes with `code`.
  void close_when_flushed(std::error_code code);
  void close_with(std::error_code code);

  // --- reading ---
  bool can_read() const noexcept;
  void set_on_data(std::function<void(std::string_view)> handler);
  // Gives the stream's reading to `framer`, which the stream then keeps alive.
  // Throws std::logic_error when another reader is set.
  void set_framer(std::shared_ptr<StreamReader> framer);
  const std::shared_ptr<StreamReader>& framer() const noexcept { return framer_; }
  // A reader's handler was set or cleared.
  void reading_changed();
  void set_busy_poll(std::chrono::microseconds window) noexcept;
  // Stream::async_read_some's halves. Throws std::logic_error when another reader is set.
  void claim_async_reader();
  // done: `n` bytes, or eof with 0 at the end; wait: nothing is there yet.
  ReadProgress read_some_now(boost::asio::mutable_buffer buffer, std::size_t& n,
                             boost::system::error_code& error);
  // Waits for the socket, then completes the waiter from the event loop.
  void read_when_ready(std::unique_ptr<ReadWaiter> waiter);

  // --- handlers ---
  void set_on_end(std::function<void()> handler);
  void set_on_drain(std::function<void()> handler);
  // The one way to set an on_close handler, the stream's own or the framer's
  // (`slot`): once the close was reported, the handler is called from the event
  // loop with the code the stream closed with instead.
  void set_close_handler(Callback<void(std::error_code)>& slot, std::function<void(std::error_code)> handler);
  void set_on_close(std::function<void(std::error_code)> handler) {
    set_close_handler(on_close_, std::move(handler));
  }

 private:
  friend class StreamService;

  // One lifecycle; the order matters (see the predicates above).
  enum class Phase : std::uint8_t {
    open,
    ending,                // end(): the writing side shuts down once the queue is out; reading goes on
    closing,               // closes with close_code_ once the queue is out; no more reading
    closed,                // the socket is closed; on_close is posted
    close_reported,        // on_close ran: a handler set now hears close_code_ from the event loop
    io_objects_destroyed,  // the io_context is going away: handlers are dropped uncalled
  };
  // The one pending flush, if any.
  enum class Flush : std::uint8_t {
    idle,
    after_read_pass,   // handlers of a read pass wrote: flush when the pass ends
    posted,            // a flush is posted to the event loop
    waiting_writable,  // the socket buffer is full: flush when it is writable
  };
  enum class ReadMode : std::uint8_t { none, data, framed, async_read };

  bool wants_data() const noexcept;
  void post_read_pass();
  void read_pass();
  void read_some_rounds();
  void wait_readable();
  void deliver();
  void handle_eof();
  void fail(int error);
  void schedule_flush();
  void flush();
  void maybe_drain();
  void notify_closed(std::error_code code);
  void watch_hangup();

  boost::asio::io_context& io_;
  std::optional<boost::asio::local::stream_protocol::socket> socket_;
  int fd_ = -1;  // the socket's, for the system calls of the hot paths
  NodeId peer_;
  unsigned peer_slot_;

  ByteQueue in_{read_buffer_initial};
  ByteQueue out_{write_buffer_initial};
  std::size_t high_water_mark_ = Stream::default_high_water_mark;
  std::chrono::microseconds busy_poll_{0};
  std::chrono::steady_clock::time_point last_data_{};
  std::chrono::steady_clock::time_point last_poll_{};
  std::chrono::steady_clock::time_point busy_poll_paused_until_{};
  bool polling_ = false;

  Phase phase_ = Phase::open;
  Flush flush_ = Flush::idle;
  ReadMode read_mode_ = ReadMode::none;
  std::shared_ptr<StreamReader> framer_;  // set with ReadMode::framed

  bool read_pending_ = false;  // a read pass is posted or a readable wait is pending
  bool read_eof_ = false;      // the peer ended: no more data will come
  bool in_read_pass_ = false;  // handlers are running on data this stream read
  bool need_drain_ = false;    // write() returned false: on_drain is owed
  bool write_shut_ = false;    // the writing side is shut down (after end())
  // While closing: the code to close with; once closed: the code it closed with.
  std::error_code close_code_;

  Callback<void(std::string_view)> on_data_;
  Callback<void()> on_end_;
  Callback<void(std::error_code)> on_close_;
  Callback<void()> on_drain_;

  // StreamService's list of live streams on this io_context.
  StreamService* service_ = nullptr;
  ListHook<StreamState> service_hook_;
};

// The state behind a handle, for the library's own code (frame.cpp, tests).
struct StreamAccess {
  static const std::shared_ptr<StreamState>& state(const Stream& stream) noexcept { return stream.state_; }
};

}  // namespace multinode::detail

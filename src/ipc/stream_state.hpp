// What a Stream handle refers to: the socket, both byte queues, the handlers,
// and the read and write loops on the process's io_context.
#pragma once

#include <multinode/error.hpp>
#include <multinode/stream.hpp>

#include "ipc/byte_queue.hpp"
#include "ipc/callback.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>

namespace multinode::detail {

class StreamService;
struct FramedState;

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
  virtual void stream_shut_down() noexcept = 0;

 protected:
  ~StreamReader() = default;
};

struct StreamState : std::enable_shared_from_this<StreamState> {
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

  StreamState(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot);
  ~StreamState();
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;

  // Registers with the io_context and starts watching for the peer going away.
  void start();

  // --- writing ---
  bool writable() const noexcept { return !closed_ && !closing_ && !ending_; }
  bool write(const char* bytes, std::size_t size);
  // After appending to out_ directly (the framer does): schedules the flush and
  // returns whether the queue is below the high-water mark.
  bool queued();
  void end();
  // One send attempt without waiting, before closing for a bad frame.
  void flush_once() noexcept;

  // --- closing ---
  // Stops reading, sends what is queued, then closes with `code`.
  void close_after_flush(std::error_code code);
  void close_with(std::error_code code);
  bool can_read() const noexcept;

  // --- reading ---
  enum class ReadMode : std::uint8_t { none, data, framed, coroutine };
  void set_on_data(std::function<void(std::string_view)> handler);
  void set_framer(StreamReader* framer);
  void claim_coroutine_reader();
  // A reader's handler was set or cleared.
  void reading_changed();
  // Stream::async_read_some's two halves.
  bool try_read_some(boost::asio::mutable_buffer buffer, std::size_t& n);
  void wait_readable_for(std::unique_ptr<ReadWaiter> waiter);

  void set_on_close(std::function<void(std::error_code)> handler);

  // From StreamService when the io_context shuts down.
  void shut_down() noexcept;

  int fd() const noexcept { return fd_; }

  boost::asio::io_context& io_;
  std::optional<boost::asio::local::stream_protocol::socket> socket_;
  int fd_;
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

  ReadMode read_mode_ = ReadMode::none;
  StreamReader* framer_ = nullptr;
  std::shared_ptr<FramedState> framed_;  // owns what framer_ points to

  bool read_pending_ = false;  // a read pass is posted or a readable wait is pending
  bool read_eof_ = false;
  bool flush_posted_ = false;
  bool in_read_pass_ = false;      // handlers are running on data this stream read
  bool flush_after_pass_ = false;  // they wrote to it: flush when the pass ends
  bool write_waiting_ = false;     // waiting for the socket to become writable
  bool need_drain_ = false;
  bool ending_ = false;  // end(): shut down the writing side once flushed
  bool write_shut_ = false;
  bool closing_ = false;  // close once flushed, with closing_code_
  bool closed_ = false;
  bool close_notified_ = false;
  bool shut_down_ = false;  // the io_context is gone or going
  std::error_code closing_code_;
  std::error_code close_code_;

  Callback<void(std::string_view)> on_data_;
  Callback<void()> on_end_;
  Callback<void(std::error_code)> on_close_;
  Callback<void()> on_drain_;

  // StreamService's list of live streams on this io_context.
  StreamService* service_ = nullptr;
  StreamState* service_prev_ = nullptr;
  StreamState* service_next_ = nullptr;

 private:
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
};

}  // namespace multinode::detail

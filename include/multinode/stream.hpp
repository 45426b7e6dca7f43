// A duplex byte stream to another process of the mesh: a direct socketpair,
// never relayed through the master.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

namespace multinode {

using NodeId = std::uint32_t;

namespace detail {
struct StreamState;
// A type-erased, move-only completion for Stream::async_read_some.
struct ReadWaiter {
  virtual ~ReadWaiter() = default;
  virtual void complete() = 0;
};
template <typename Handler>
struct ReadWaiterFor final : ReadWaiter {
  explicit ReadWaiterFor(Handler&& h) : handler(std::move(h)) {}
  void complete() override { std::move(handler)(); }
  Handler handler;
};
}  // namespace detail

// A handle: copies refer to the same stream. Every callback runs on the
// process's io_context, never inside the call that caused it. The stream stays
// open until close() or until the peer goes away, whether or not a handle is
// kept. Handles may outlive the io_context: destroying the io_context closes
// every stream on it silently and drops its handlers.
//
// Reading starts only when a reader is set (on_data, a framed stream's
// on_message, or async_read_some), so bytes that arrive earlier wait in the
// socket and none is lost to the order in which handlers are set.
class Stream {
 public:
  // Default for set_high_water_mark().
  static constexpr std::size_t default_high_water_mark = std::size_t{1024} * 1024;

  Stream() = default;

  // Wraps a connected stream socket (AF_UNIX SOCK_STREAM) to the process `peer`.
  // Takes ownership of fd (and marks it close-on-exec, so that processes started
  // later never hold a copy that would keep the stream from ending). Used by the
  // mesh; tests may use it with a socketpair. Throws std::system_error when fd
  // cannot be used.
  static Stream adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot);

  NodeId peer_id() const noexcept;
  unsigned peer_slot() const noexcept;
  // False once closed, or once the stream is finishing after end() or close of a framed stream.
  bool is_open() const noexcept;
  explicit operator bool() const noexcept { return state_ != nullptr; }

  // Queues bytes; what is queued when the event loop next runs goes to the kernel
  // in one system call. Returns false when the bytes buffered are at or above the
  // high-water mark afterwards (like Node's write()): the data is still queued;
  // wait for on_drain before writing more. Returns false without queueing when
  // the stream is closed or ending.
  bool write(std::string_view bytes);
  bool write(boost::asio::const_buffer bytes);
  // Bytes queued and not yet handed to the kernel.
  std::size_t buffered() const noexcept;
  std::size_t high_water_mark() const noexcept;
  void set_high_water_mark(std::size_t bytes);
  // Sends what is queued, then shuts down the writing side. The stream closes
  // (errc::peer_gone) when the peer has ended too.
  void end();
  // Closes at once; queued bytes are dropped; on_close runs with errc::stream_closed.
  void close();
  // Stops reading, sends what is queued, then closes (errc::stream_closed): for
  // a process that is stopping. A stream keeps the io_context busy until it closes.
  void close_when_flushed();

  // Data as it arrives, in chunks of any size (setting it starts reading). The
  // view is valid during the call only. A null handler pauses reading.
  // Throws std::logic_error on a framed stream or one read with async_read_some.
  void on_data(std::function<void(std::string_view)> handler);
  // The peer shut down its writing side or went away: no more data will come.
  void on_end(std::function<void()> handler);
  // The stream is closed; the code says why: errc::peer_gone when the peer ended
  // the stream, exited or died; errc::stream_closed after close(); for framed
  // streams the frame error that closed it (see FramedStream::on_close).
  // Set on a stream that is already closed, it is called (from the event loop) with that code.
  void on_close(std::function<void(std::error_code)> handler);
  // The buffered bytes fell below the high-water mark again after write() returned false.
  void on_drain(std::function<void()> handler);

  // Trades CPU for latency: after data arrived, keep polling the socket through
  // the event loop for up to `window` before sleeping in epoll. Waking a
  // sleeping process costs tens of microseconds on virtual machines; polling
  // answers within about one. Off (0) by default. See docs/ipc.md.
  void set_busy_poll(std::chrono::microseconds window);

  // For coroutine code instead of on_data: reads some bytes; 0 when no more data
  // will come (the peer ended or went away, or the stream was closed). One read
  // at a time. Throws std::logic_error on a stream that has on_data set or is framed.
  // (Defined here so that the coroutine is compiled with the caller's code: the
  // library itself has none, which keeps clang 14's sanitizer builds working.)
  boost::asio::awaitable<std::size_t> async_read_some(boost::asio::mutable_buffer buffer) {
    Stream self = *this;  // the handle this was called on may be gone when the read completes
    for (;;) {
      std::size_t n = 0;
      if (self.try_read_some(buffer, n)) co_return n;
      co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
          [&self](auto handler) {
            self.wait_readable(
                std::make_unique<detail::ReadWaiterFor<decltype(handler)>>(std::move(handler)));
          },
          boost::asio::use_awaitable);
    }
  }

  const std::shared_ptr<detail::StreamState>& state() const noexcept { return state_; }
  friend bool operator==(const Stream& a, const Stream& b) noexcept { return a.state_ == b.state_; }

 private:
  explicit Stream(std::shared_ptr<detail::StreamState> state) : state_(std::move(state)) {}
  // For async_read_some: true with n bytes read (0 at the end), or false when
  // nothing is there yet. Throws std::logic_error when another reader is set.
  bool try_read_some(boost::asio::mutable_buffer buffer, std::size_t& n);
  // Completes the waiter once the socket is readable or the stream closed.
  void wait_readable(std::unique_ptr<detail::ReadWaiter> waiter);
  std::shared_ptr<detail::StreamState> state_;
};

}  // namespace multinode

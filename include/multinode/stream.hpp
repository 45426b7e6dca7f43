// A duplex byte stream to another process of the mesh: a direct socketpair,
// never relayed through the master.
#pragma once

#include <multinode/node_id.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace multinode {

namespace detail {
class StreamState;
struct StreamAccess;

// How far Stream::async_read_some got without waiting: done (n bytes, or eof),
// wait for the socket, or nothing to complete on (the io_context is going away).
enum class ReadProgress : std::uint8_t { done, wait, io_objects_destroyed };

// A read of Stream::async_read_some that waits for the socket, with its
// completion handler type-erased so that the waiting is compiled in the library.
class ReadWaiter {
 public:
  explicit ReadWaiter(boost::asio::mutable_buffer buffer) noexcept : buffer_(buffer) {}
  virtual ~ReadWaiter() = default;
  ReadWaiter(const ReadWaiter&) = delete;
  ReadWaiter& operator=(const ReadWaiter&) = delete;

  boost::asio::mutable_buffer buffer() const noexcept { return buffer_; }
  // Called once, from the event loop, when the read is done.
  virtual void complete(const boost::system::error_code& error, std::size_t bytes) = 0;

 private:
  boost::asio::mutable_buffer buffer_;
};

template <typename Handler>
class ReadWaiterFor final : public ReadWaiter {
 public:
  using Executor = boost::asio::associated_executor_t<Handler, boost::asio::io_context::executor_type>;

  ReadWaiterFor(Handler&& handler, boost::asio::mutable_buffer buffer,
                const boost::asio::io_context::executor_type& io)
      : ReadWaiter(buffer),
        work_(boost::asio::get_associated_executor(handler, io)),
        handler_(std::move(handler)) {}

  void complete(const boost::system::error_code& error, std::size_t bytes) override {
    // As Asio's own operations: the handler runs on its associated executor,
    // which was kept busy (work_) while the read waited.
    Executor executor = work_.get_executor();
    work_.reset();
    boost::asio::dispatch(executor, boost::asio::append(std::move(handler_), error, bytes));
  }

 private:
  boost::asio::executor_work_guard<Executor> work_;
  Handler handler_;
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
  // cannot be used (not a socket, not a stream socket, or the io_context cannot
  // watch it); fd is closed then too.
  static Stream adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot);
  // The same without exceptions: on failure `error` says why, fd is closed and
  // the handle returned is empty.
  static Stream adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot,
                      std::error_code& error);

  // The executor of the io_context the stream runs on. Not on an empty handle.
  using executor_type = boost::asio::io_context::executor_type;
  executor_type get_executor() const;

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

  // Instead of on_data: reads some bytes into `buffer`, as Asio's sockets do.
  // Completes with (boost::system::error_code, std::size_t): the bytes read, or
  // boost::asio::error::eof and 0 once no more data will come (the peer ended or
  // went away, or the stream was closed). An empty buffer completes with 0 bytes
  // and no error. The token is any Asio completion token: a callback,
  // use_awaitable (include <boost/asio/use_awaitable.hpp> yourself),
  // use_future, deferred, as_tuple(...), redirect_error(...). The completion
  // runs from the event loop, never inside this call, on the handler's
  // associated executor. One read at a time. Throws std::logic_error (from this
  // call) on a stream that has on_data set or is framed, std::invalid_argument
  // on an empty handle. A read pending when the io_context is destroyed is
  // dropped without being completed, as Asio drops its own.
  template <typename ReadToken>
  auto async_read_some(boost::asio::mutable_buffer buffer, ReadToken&& token) {
    claim_async_reader();
    return boost::asio::async_initiate<ReadToken, void(boost::system::error_code, std::size_t)>(
        [](auto handler, Stream self, boost::asio::mutable_buffer into) {
          std::size_t n = 0;
          boost::system::error_code error;
          switch (self.read_some_now(into, n, error)) {
            case detail::ReadProgress::done:
              boost::asio::post(self.get_executor(), boost::asio::append(std::move(handler), error, n));
              return;
            case detail::ReadProgress::wait:
              self.read_when_ready(std::make_unique<detail::ReadWaiterFor<decltype(handler)>>(
                  std::move(handler), into, self.get_executor()));
              return;
            case detail::ReadProgress::io_objects_destroyed:
              return;  // nothing left to complete on: the handler is dropped
          }
        },
        token, *this, buffer);
  }

  friend bool operator==(const Stream& a, const Stream& b) noexcept { return a.state_ == b.state_; }

 private:
  friend struct detail::StreamAccess;
  explicit Stream(std::shared_ptr<detail::StreamState> state) : state_(std::move(state)) {}
  // async_read_some's parts compiled in the library. claim_async_reader()
  // throws when the stream has another reader or the handle is empty.
  void claim_async_reader();
  detail::ReadProgress read_some_now(boost::asio::mutable_buffer buffer, std::size_t& n,
                                     boost::system::error_code& error);
  // Completes the waiter from the event loop once the read is done.
  void read_when_ready(std::unique_ptr<detail::ReadWaiter> waiter);
  std::shared_ptr<detail::StreamState> state_;
};

}  // namespace multinode

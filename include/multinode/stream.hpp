// A duplex byte stream to another process of the mesh: a direct socketpair,
// never relayed through the master.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>

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
}

// A handle: copies refer to the same stream. Every callback runs on the
// process's io_context. The stream stays open until close() or until the peer
// goes away, whether or not a handle is kept.
class Stream {
 public:
  Stream() = default;

  // Wraps a connected stream socket (AF_UNIX SOCK_STREAM) to the process `peer`.
  // Takes ownership of fd. Used by the mesh; tests may use it with a socketpair.
  static Stream adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot);

  NodeId peer_id() const noexcept;
  unsigned peer_slot() const noexcept;
  bool is_open() const noexcept;
  explicit operator bool() const noexcept { return state_ != nullptr; }

  // Queues bytes; queued writes are sent together with one writev. Returns false
  // when the bytes buffered are above the high-water mark afterwards (like Node's
  // write()): the data is still queued; wait for on_drain before writing more.
  bool write(std::string_view bytes);
  bool write(boost::asio::const_buffer bytes);
  // Bytes queued and not yet handed to the kernel.
  std::size_t buffered() const noexcept;
  void set_high_water_mark(std::size_t bytes);
  // Sends what is queued, then shuts down the writing side.
  void end();
  // Closes at once; queued bytes are dropped; on_close runs with errc::stream_closed.
  void close();

  // Data as it arrives, in chunks of any size (setting it starts reading).
  void on_data(std::function<void(std::string_view)> handler);
  // The peer shut down its writing side or went away: no more data will come.
  void on_end(std::function<void()> handler);
  // The stream is closed; the code says why (errc::peer_gone when the peer died
  // or exited, or the error that closed it).
  void on_close(std::function<void(std::error_code)> handler);
  // The buffered bytes fell below the high-water mark again.
  void on_drain(std::function<void()> handler);

  // For coroutine code instead of on_data: reads some bytes; 0 at end of stream.
  boost::asio::awaitable<std::size_t> async_read_some(boost::asio::mutable_buffer buffer);

  const std::shared_ptr<detail::StreamState>& state() const noexcept { return state_; }

 private:
  explicit Stream(std::shared_ptr<detail::StreamState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::StreamState> state_;
};

}  // namespace multinode

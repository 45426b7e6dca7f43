// The one accept path of the TCP and HTTP servers: wait until a listening socket
// is readable, then accept4() a burst of queued connections, each born
// non-blocking and close-on-exec (a handler that runs fork()+exec() or system()
// leaks no client connection into the child), with TCP_NODELAY.
//
// Asio's async_accept calls plain accept() in Boost 1.81: no SOCK_CLOEXEC, and one
// wake-up per connection. This replaces it for both servers.
//
// With an AcceptBalance (net/balance.hpp), a process that holds more than its share
// stops accepting, within a burst too, and leaves the connection queued for another
// process (on the shared socket, or on any slot's reuseport socket, which every
// process holds).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace multinode::detail {

class Acceptor {
 public:
  // Connections accepted per wake-up at most: others on the io_context get their
  // turn between two bursts.
  static constexpr int burst = 64;

  using Handler = std::function<void(boost::asio::ip::tcp::socket)>;

  // `what` names the server in log lines ("http", "tcp").
  Acceptor(boost::asio::ip::tcp::acceptor listener, Handler handler, std::string what);
  // Closes the listener.
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Starts accepting; the handler gets every accepted connection until close().
  void start();
  // Stops accepting and closes the listening socket. The handler is not called
  // again, even from the burst in progress (a handler may call close()).
  void close() noexcept;
  bool closed() const noexcept;
  // The io_context is going away: destroy the listener and the pause timer now.
  void destroy_io_objects() noexcept;

 private:
  // Pending waits hold the state, so that a wake-up after the Acceptor is gone
  // finds it closed instead of freed memory.
  struct State {
    std::optional<boost::asio::ip::tcp::acceptor> listener;
    // Out of fds or memory: accepting pauses a moment instead of spinning on a
    // socket that stays readable.
    std::optional<boost::asio::steady_timer> pause;
    // Balancing left connections queued: if they are still there after
    // BalanceTable::fallback_wait, this process takes them anyway.
    std::optional<boost::asio::steady_timer> fallback;
    Handler handler;
    std::string what;
    bool closed = false;
    bool waiting = false;  // an async_wait on the listener is pending
    bool fallback_armed = false;
    std::uint64_t balance_key = 0;  // the doorbell's retry, 0 when not balanced
  };

  static void wait(const std::shared_ptr<State>& state);
  // balanced: stop when AcceptBalance says this process holds enough.
  static void accept_burst(const std::shared_ptr<State>& state, bool balanced = true);
  static void arm_fallback(const std::shared_ptr<State>& state);
  static void pause(const std::shared_ptr<State>& state, int error);

  std::shared_ptr<State> state_;
};

}  // namespace multinode::detail

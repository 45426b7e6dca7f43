// What one process's HTTP server holds: an Acceptor per listener, the open
// connections (an intrusive list swept by one coarse timer for every timeout),
// the clock and Date caches shared by all connections.
#pragma once

#include <multinode/http.hpp>

#include "http/buffer_pool.hpp"
#include "http/date.hpp"
#include "http/exchange_state.hpp"
#include "net/acceptor.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace multinode::http::detail {

using Clock = std::chrono::steady_clock;

class Connection;

class ServerImpl : public std::enable_shared_from_this<ServerImpl> {
 public:
  ServerImpl(Server::Handler handler, Options options);
  ~ServerImpl();
  ServerImpl(const ServerImpl&) = delete;
  ServerImpl& operator=(const ServerImpl&) = delete;

  void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners);
  void stop();
  void on_drained(std::function<void()> done);
  // The Server object is going away: stop, and close every connection now.
  void close_all();

  const Options& options() const noexcept { return options_; }
  Stats& stats() noexcept { return stats_; }
  const Server::Handler& handler() const noexcept { return handler_; }
  bool stopping() const noexcept { return stopping_; }

  // Time of the event being handled, refreshed once per read or tick.
  Clock::time_point now() const noexcept { return now_; }
  Clock::time_point refresh_clock() noexcept { return now_ = Clock::now(); }
  std::string_view date_line() noexcept { return date_.line(); }
  // Where lingering connections read what they throw away (never looked at).
  std::span<char> discard_buffer() noexcept { return discard_; }
  // The buffers connections borrow while they have a request in hand (a connection
  // between requests holds none), and the scratch list of a writev (filled and used
  // within one flush).
  BufferPool& input_pool() noexcept { return input_pool_; }
  BufferPool& output_pool() noexcept { return output_pool_; }
  // What a connection holds while it has a request in hand (exchange_state.hpp).
  ExchangePool& exchange_pool() noexcept { return exchange_pool_; }
  std::vector<boost::asio::const_buffer>& write_buffers() noexcept { return write_buffers_; }

  // Every live Connection object is in the list (open or not), so that
  // destroy_io_objects() can reach every socket; connection_closed() counts the open ones.
  void link(Connection& connection) noexcept;
  void unlink(Connection& connection) noexcept;
  void connection_closed() noexcept;
  // A connection taken over (Response::take_over) is owned by `owner` from now on:
  // it still counts as open until the owner releases it.
  void adopt(Connection& connection, TakenOver& owner) noexcept;
  void release(TakenOver& owner) noexcept;
  // The io_context is about to be destroyed: destroy every Asio object bound to it.
  void destroy_io_objects() noexcept;

 private:
  void on_accepted(boost::asio::ip::tcp::socket socket);
  void arm_sweep();
  void sweep();
  // Calls f(connection) for every live connection, each held for the call (f may close it).
  template <typename F>
  void for_each_connection(F f);
  // Same for the taken-over connections (f may release the one it is given, or any other).
  template <typename F>
  void for_each_taken_over(F f);

  Server::Handler handler_;
  Options options_;
  Stats stats_;
  BufferPool input_pool_;
  BufferPool output_pool_;
  ExchangePool exchange_pool_;
  std::vector<boost::asio::const_buffer> write_buffers_;
  boost::asio::io_context* io_ = nullptr;
  std::vector<std::unique_ptr<multinode::detail::Acceptor>> acceptors_;
  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  bool sweep_armed_ = false;
  std::uint64_t sweep_generation_ = 0;  // tells a cancelled sweep's handler from the current one
  Clock::duration sweep_period_{};
  bool stopping_ = false;
  Clock::time_point now_ = Clock::now();
  DateCache date_;
  std::array<char, 4096> discard_{};
  // Live connections, newest first. A pointer to member of an incomplete class
  // cannot be a template argument: the list type is complete in server.cpp.
  struct Connections;
  std::unique_ptr<Connections> connections_;
  std::size_t open_ = 0;
  // Taken-over connections (TakenOver::previous_/next_), newest first; the one a
  // for_each_taken_over() visits next, moved on when that one is released.
  TakenOver* taken_over_ = nullptr;
  TakenOver* taken_over_cursor_ = nullptr;
  std::vector<std::function<void()>> drained_handlers_;
};

}  // namespace multinode::http::detail

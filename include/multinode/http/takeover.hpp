// Taking a connection over from the HTTP server: after a 101 (an Upgrade, e.g.
// WebSocket) or a 2xx to a CONNECT, the bytes on the connection are no longer
// HTTP. Response::take_over() writes that head and hands the socket, and what the
// server already read past the request, to a TakenOver object of the caller.
//
// The server keeps every TakenOver in a list while it is open: Server::stop()
// reaches it (a WebSocket closes with 1001), Server::on_drained() waits for it,
// Server::destroy_io_objects() closes its socket, and the server's coarse timer
// calls check_deadlines() so that the new owner needs no timer of its own.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace multinode::http {

namespace detail {
class Connection;
class ServerImpl;
}  // namespace detail

// What the new owner gets from Response::take_over().
struct Handover {
  boost::asio::ip::tcp::socket socket;
  // Bytes the client sent after the request, read by the server already (a client
  // may send its first WebSocket frame right behind the upgrade request).
  std::string received;
  // The end of the 101 or 2xx head that the socket did not take at once (empty
  // nearly always): the new owner writes these first.
  std::string unsent;
};

// Base of what owns a taken-over connection. Single-threaded, like the server:
// every call comes on the server's io_context.
class TakenOver {
 public:
  using Clock = std::chrono::steady_clock;

  TakenOver(const TakenOver&) = delete;
  TakenOver& operator=(const TakenOver&) = delete;

  // Graceful stop (Server::stop()): end the conversation, then release().
  virtual void on_server_stop() = 0;
  // About every 250 ms at most one second (the server's sweep) while registered.
  virtual void check_deadlines(Clock::time_point now) = 0;
  // The io_context goes away: close and destroy the socket now, then release().
  virtual void destroy_io_objects() noexcept = 0;

  // Registered with a server (between take_over() and release()).
  bool registered() const noexcept { return server_ != nullptr; }

 protected:
  TakenOver() noexcept = default;
  ~TakenOver();  // releases
  // The connection is closed: the server no longer counts it as open nor waits for
  // it in on_drained(). Does nothing when not registered.
  void release() noexcept;
  // The server is stopping gracefully (so a new owner can refuse to start).
  bool server_stopping() const noexcept;

 private:
  friend class detail::Connection;
  friend class detail::ServerImpl;
  std::shared_ptr<detail::ServerImpl> server_;
  TakenOver* previous_ = nullptr;  // the server's list of taken-over connections
  TakenOver* next_ = nullptr;
};

}  // namespace multinode::http

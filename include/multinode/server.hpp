// What listen() serves: anything that can start on a process's listening sockets
// and stop gracefully. multinode::tcp::Server and multinode::http::Server are two.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <vector>

namespace multinode {

// What a server tells the supervisor about its work, for status, metrics and
// Options::max_requests.
struct ServerCounters {
  std::uint64_t connections_open = 0;  // connections this process holds now
  std::uint64_t requests = 0;          // requests (the TCP server: connections) taken since start()
};

class Server {
 public:
  virtual ~Server() = default;

  // Called once in every serving process, before run() handles any event, with the
  // process's own handles on the listening sockets (already bound and listening).
  virtual void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) = 0;

  // Graceful stop: close the listeners, let the work in hand finish and close idle
  // connections. The process exits once its io_context has no work left (or at
  // Options::stop_timeout).
  virtual void stop() = 0;

  // After stop(): calls `done` once the connections this server had in hand are
  // finished. A server that does not track its connections (the TCP server hands
  // them to you) calls it at once. The process keeps its streams to other
  // processes open until then, so requests still in flight can use them.
  virtual void on_drained(std::function<void()> done) { done(); }

  // This process's figures so far (cheap: read at every request by max_requests).
  virtual ServerCounters counters() const noexcept { return {}; }

  // The process's io_context is about to be destroyed (the Nodes handle is going
  // away; a server is usually declared before it and outlives it). Destroy every
  // Asio object bound to that io_context now: acceptors, timers, sockets.
  virtual void destroy_io_objects() noexcept = 0;
};

}  // namespace multinode

// What listen() serves: anything that can start on a process's listening sockets
// and stop gracefully. multinode::tcp::Server and multinode::http::Server are two.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <vector>

namespace multinode {

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
};

}  // namespace multinode

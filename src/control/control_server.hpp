// The master's operator interface on its event loop: command lines on a Unix
// stream socket (Options::control_socket) and GET /metrics on TCP
// (Options::metrics_listen). One exchange per connection: read the command or
// request (bounded in bytes and time), let the handler answer, write the reply,
// close. What a command does is not known here (src/core/ decides); this file
// only keeps operator clients from costing the serving loop more than a bound.
#pragma once

#include "control/command.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace multinode::detail {

class ControlServer {
 public:
  struct Limits {
    // A client has this long from its connection to the end of the reply.
    std::chrono::milliseconds timeout{5000};
    // Clients at once; one more is answered "too many" and closed at once.
    unsigned max_clients = 64;
  };
  // Called exactly once per command with the whole reply (a command line's reply
  // ends with a newline; for metrics it is the Prometheus text).
  using Reply = std::function<void(std::string text)>;
  using Handler = std::function<void(const Command& command, Reply reply)>;

  ControlServer(boost::asio::io_context& io, Limits limits, Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Takes a listening AF_UNIX SOCK_STREAM socket (owned from now on): command lines.
  void serve_commands(int listening_fd);
  // Takes a listening TCP socket (owned from now on): GET /metrics.
  void serve_metrics(int listening_fd);
  // Stops accepting and closes the listening sockets; clients still sending their
  // command are closed, replies under way are finished (within the timeout).
  void stop();
  std::size_t clients() const noexcept { return clients_.size(); }

 private:
  enum class Dialect { command_line, http_metrics };
  struct Listener {
    Dialect dialect;
    std::unique_ptr<boost::asio::posix::stream_descriptor> socket;
    std::unique_ptr<boost::asio::steady_timer> pause;
  };
  class Client;

  void listen_on(int fd, Dialect dialect);
  void wait_for_clients(Listener& listener);
  void accept_burst(Listener& listener);
  void forget(std::uint64_t id) noexcept;

  boost::asio::io_context& io_;
  Limits limits_;
  Handler handler_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::map<std::uint64_t, std::shared_ptr<Client>> clients_;
  std::uint64_t next_client_ = 1;
  bool stopped_ = false;
};

}  // namespace multinode::detail

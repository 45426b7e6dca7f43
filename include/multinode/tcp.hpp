// A TCP server: every accepted connection is handed to your handler as an Asio socket.
#pragma once

#include <multinode/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace multinode::tcp {

// Accepted sockets are non-blocking, close-on-exec and have TCP_NODELAY set; up to
// 64 queued connections are accepted per wake-up.
class Server final : public multinode::Server {
 public:
  using Handler = std::function<void(boost::asio::ip::tcp::socket)>;

  explicit Server(Handler handler);
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) override;
  void stop() override;
  void destroy_io_objects() noexcept override;

  // requests: connections accepted; connections_open: 0, since the sockets are yours.
  ServerCounters counters() const noexcept override;

  // Connections accepted by this process so far.
  std::uint64_t accepted() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace multinode::tcp

// A TCP server: every accepted connection is handed to your handler as an Asio socket.
#pragma once

#include <multinode/server.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace multinode::tcp {

class Server final : public multinode::Server {
 public:
  using Handler = std::function<void(boost::asio::ip::tcp::socket)>;

  explicit Server(Handler handler);

  void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) override;
  void stop() override;
  void destroy_io_objects() noexcept override;

  // Connections accepted by this process so far.
  std::uint64_t accepted() const noexcept { return accepted_; }

 private:
  void accept(boost::asio::ip::tcp::acceptor& acceptor);

  Handler handler_;
  std::vector<boost::asio::ip::tcp::acceptor> listeners_;
  // Out of fds: accepting pauses a moment instead of spinning on a ready socket.
  std::unique_ptr<boost::asio::steady_timer> pause_;
  std::uint64_t accepted_ = 0;
};

}  // namespace multinode::tcp

// A TCP echo server on several processes. Each connection first gets one line
// "node <id> pid <pid>", then every byte it sends comes back.
//
//   echo [--port N] [--nodes N] [--host ADDRESS] [--no-master-listen] [--no-restart]
#include <multinode/multinode.hpp>

#include <boost/asio.hpp>

#include <unistd.h>
#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace asio = boost::asio;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

  void start(const std::string& greeting) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(greeting), [self](std::error_code error, std::size_t) {
      if (!error) self->read();
    });
  }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buffer_), [self](std::error_code error, std::size_t n) {
      if (error) return;  // the client closed, or the connection broke
      asio::async_write(self->socket_, asio::buffer(self->buffer_, n),
                        [self](std::error_code error, std::size_t) {
                          if (!error) self->read();
                        });
    });
  }

  asio::ip::tcp::socket socket_;
  std::array<char, 16384> buffer_;
};

int main(int argc, char** argv) {
  multinode::Options options{.port = 8000, .nodes = 2};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value)
      options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    else if (arg == "--nodes" && has_value)
      options.nodes = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (arg == "--host" && has_value)
      options.host = argv[++i];
    else if (arg == "--no-master-listen")
      options.master_listen = false;
    else if (arg == "--no-restart")
      options.restart_children = false;
    else {
      std::cerr
          << "usage: echo [--port N] [--nodes N] [--host ADDRESS] [--no-master-listen] [--no-restart]\n";
      return 2;
    }
  }

  std::string greeting;
  multinode::tcp::Server server([&greeting](asio::ip::tcp::socket socket) {
    std::make_shared<Session>(std::move(socket))->start(greeting);
  });
  auto nodes = multinode::listen(options, server);
  greeting = "node " + std::to_string(nodes.id()) + " pid " + std::to_string(::getpid()) + "\n";
  return nodes.run();
}

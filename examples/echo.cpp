// A TCP echo server on several processes. Each connection first gets one line
// "node <id> pid <pid>", then every byte it sends comes back.
//
//   echo [--port N] [--nodes N] [--host ADDRESS] [--no-master-listen] [--no-restart]
#include <multinode/multinode.hpp>

#include "command_line.hpp"

#include <boost/asio.hpp>

#include <unistd.h>
#include <array>
#include <iostream>
#include <memory>
#include <string>

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
  CLI::App app{"Echo over TCP on several processes", "echo"};
  examples::add_listen_options(app, options);
  app.add_flag("--no-master-listen{false}", options.master_listen, "The master only supervises");
  app.add_flag("--no-restart{false}", options.restart_children, "Do not replace a worker that died");
  if (const auto status = examples::parse(app, argc, argv)) return *status;

  std::string greeting;
  multinode::tcp::Server server([&greeting](asio::ip::tcp::socket socket) {
    std::make_shared<Session>(std::move(socket))->start(greeting);
  });
  auto nodes = multinode::listen(options, server);
  greeting = "node " + std::to_string(nodes.id()) + " pid " + std::to_string(::getpid()) + "\n";
  return nodes.run();
}

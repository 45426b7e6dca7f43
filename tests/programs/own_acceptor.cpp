// listen() without a server: the program takes the listening sockets into its own
// Asio code and answers each connection with "own <id>\n". It uses the error_code
// overload of listen(): a failure is "listen failed: <error>" and exit status 2.
//   own_acceptor [--nodes N] [--port N]
#include <multinode/multinode.hpp>

#include <boost/asio.hpp>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;

void accept_loop(asio::ip::tcp::acceptor& acceptor, const std::string& reply) {
  acceptor.async_accept([&acceptor, &reply](boost::system::error_code error, asio::ip::tcp::socket socket) {
    if (error) return;
    auto connection = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
    asio::async_write(*connection, asio::buffer(reply),
                      [connection](boost::system::error_code, std::size_t) {});
    accept_loop(acceptor, reply);
  });
}

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 2, .host = "127.0.0.1"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--nodes") options.nodes = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (arg == "--port") options.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
  }
  std::error_code error;
  auto nodes = multinode::listen(options, error);
  if (!nodes) {
    std::cerr << "listen failed: " << error.message() << std::endl;
    return 2;
  }
  const std::string reply = "own " + std::to_string(nodes.id()) + "\n";
  auto acceptors = nodes.take_listeners();
  for (auto& acceptor : acceptors) accept_loop(acceptor, reply);
  nodes.on_stop([&acceptors] {
    for (auto& acceptor : acceptors) acceptor.close();
  });
  if (nodes.is_master()) std::cout << "port " << nodes.local_port() << std::endl;
  return nodes.run();
}

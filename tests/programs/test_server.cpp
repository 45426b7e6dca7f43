// The echo server with every supervision option on the command line, for the
// integration tests: each connection gets "node <id> pid <pid>\n", then echo.
//
//   test_server --port N [--nodes N] [--host H] [--no-master-listen] [--no-restart]
//               [--reuseport] [--min-uptime MS] [--restart-delay MS] [--limit N]
//               [--stop-timeout MS] [--worker-exit STATUS]
// --worker-exit makes every worker exit with STATUS as soon as it starts (a crash loop).
#include <multinode/multinode.hpp>

#include <boost/asio.hpp>

#include <unistd.h>
#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace asio = boost::asio;

namespace {

void echo(std::shared_ptr<asio::ip::tcp::socket> socket, std::shared_ptr<std::array<char, 4096>> buffer) {
  socket->async_read_some(asio::buffer(*buffer),
                          [socket, buffer](boost::system::error_code error, std::size_t n) {
                            if (error) return;
                            asio::async_write(*socket, asio::buffer(*buffer, n),
                                              [socket, buffer](boost::system::error_code error, std::size_t) {
                                                if (!error) echo(socket, buffer);
                                              });
                          });
}

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 2, .host = "127.0.0.1"};
  std::optional<int> worker_exit;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "0";
    auto ms = [&] {
      ++i;
      return std::chrono::milliseconds(std::atoi(value));
    };
    if (arg == "--port")
      options.port = static_cast<std::uint16_t>(std::atoi(value)), ++i;
    else if (arg == "--nodes")
      options.nodes = static_cast<unsigned>(std::atoi(value)), ++i;
    else if (arg == "--host")
      options.host = value, ++i;
    else if (arg == "--no-master-listen")
      options.master_listen = false;
    else if (arg == "--no-restart")
      options.restart_children = false;
    else if (arg == "--reuseport")
      options.balancing = multinode::Balancing::reuseport;
    else if (arg == "--min-uptime")
      options.min_uptime = ms();
    else if (arg == "--restart-delay")
      options.restart_delay = ms();
    else if (arg == "--stop-timeout")
      options.stop_timeout = ms();
    else if (arg == "--limit")
      options.crash_loop_limit = static_cast<unsigned>(std::atoi(value)), ++i;
    else if (arg == "--worker-exit")
      worker_exit = std::atoi(value), ++i;
    else {
      std::cerr << "test_server: unknown argument " << arg << "\n";
      return 2;
    }
  }

  std::string greeting;
  multinode::tcp::Server server([&greeting](asio::ip::tcp::socket accepted) {
    auto socket = std::make_shared<asio::ip::tcp::socket>(std::move(accepted));
    auto buffer = std::make_shared<std::array<char, 4096>>();
    asio::async_write(*socket, asio::buffer(greeting),
                      [socket, buffer](boost::system::error_code error, std::size_t) {
                        if (!error) echo(socket, buffer);
                      });
  });
  auto nodes = multinode::listen(options, server);
  if (!nodes.is_master() && worker_exit) return *worker_exit;
  greeting = "node " + std::to_string(nodes.id()) + " pid " + std::to_string(::getpid()) + "\n";
  if (nodes.is_master()) std::cout << "port " << nodes.local_port() << std::endl;
  return nodes.run();
}

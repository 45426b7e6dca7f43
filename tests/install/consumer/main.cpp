// A program built against an installed multinode: two serving processes (the
// master and one worker) on a free port; once the worker is ready the master asks
// itself for one page over its own Asio socket, checks the answer and stops both.
// Exit status 0 when the page came back, 1 otherwise (or after 20 s).
#include <multinode/multinode.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <string>

// The package must hand on the define that keeps Asio's inline code alike in the
// libraries and here (cmake/install.cmake says why); C++20 it hands on too.
#ifndef BOOST_ASIO_NO_DEPRECATED
#error "BOOST_ASIO_NO_DEPRECATED did not come with multinode"
#endif

namespace asio = boost::asio;

int main() {
  multinode::http::Server server([](multinode::http::Request&, multinode::http::Response& res) {
    res.set("Content-Type", "text/plain");
    res.end("installed multinode\n");
  });
  auto nodes = multinode::listen({.port = 0, .nodes = 2, .host = "127.0.0.1"}, server);
  if (!nodes.is_master()) return nodes.run();

  bool answered = false;
  asio::steady_timer deadline(nodes.io_context(), std::chrono::seconds(20));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "consumer: no answer within 20 s\n";
    nodes.stop();
  });
  nodes.on_stop([&] { deadline.cancel(); });
  nodes.on_worker_ready([&](const multinode::WorkerInfo&) {
    asio::co_spawn(
        nodes.io_context(),
        [&]() -> asio::awaitable<void> {
          asio::ip::tcp::socket socket(nodes.io_context());
          co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), nodes.local_port()},
                                        asio::use_awaitable);
          const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
          co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
          std::string reply;
          boost::system::error_code ec;
          co_await asio::async_read(socket, asio::dynamic_buffer(reply),
                                    asio::redirect_error(asio::use_awaitable, ec));
          answered = reply.starts_with("HTTP/1.1 200") && reply.ends_with("\r\n\r\ninstalled multinode\n");
          if (!answered) std::cerr << "consumer: unexpected answer:\n" << reply << "\n";
          nodes.stop();
        },
        [&](std::exception_ptr error) {
          if (!error) return;
          std::cerr << "consumer: the request failed\n";
          nodes.stop();
        });
  });
  const int status = nodes.run();
  return status == 0 && answered ? 0 : 1;
}

// A WebSocket echo server on several processes: every message sent to `/` comes
// back with its kind (text or binary); nothing is sent unsolicited. The
// benchmark (bench/) and the real-client tests (Node's ws, python3-websockets) use it.
//
//   websocket_echo [--port N] [--nodes N] [--host ADDRESS] [--deflate] [--deflate-threshold BYTES]
//
// --deflate accepts permessage-deflate (RFC 7692) from clients that offer it;
// --deflate-threshold (implies --deflate) compresses answers from that size up
// (default 1024; the benchmark's 64-byte echo uses 0).
#include <multinode/http.hpp>
#include <multinode/nodes.hpp>
#include <multinode/websocket.hpp>

#include <cstdlib>
#include <iostream>
#include <string_view>
#include <system_error>

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  multinode::websocket::Options ws_options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (arg == "--nodes" && has_value) {
      options.nodes = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (arg == "--host" && has_value) {
      options.host = argv[++i];
    } else if (arg == "--deflate") {
      ws_options.permessage_deflate = true;
    } else if (arg == "--deflate-threshold" && has_value) {
      ws_options.permessage_deflate = true;
      ws_options.deflate_threshold = static_cast<std::size_t>(std::atol(argv[++i]));
    } else {
      std::cerr << "usage: websocket_echo [--port N] [--nodes N] [--host ADDRESS] [--deflate] "
                   "[--deflate-threshold BYTES]\n";
      return 2;
    }
  }

  namespace http = multinode::http;
  namespace websocket = multinode::websocket;
  http::Server server([&ws_options](http::Request& request, http::Response& response) {
    if (request.path() != "/") return response.status(404).end("not found: WebSocket upgrades at /\n");
    auto socket = websocket::accept(request, response, ws_options);
    if (!socket) return;  // not a valid upgrade: accept() answered it
    // A raw pointer is enough: the connection calls its handlers only while it lives
    // (a shared_ptr would do too: the handlers are let go of at the close).
    socket->on_message([connection = socket.get()](std::string_view data, websocket::Kind kind) {
      connection->send(data, kind);
    });
  });
  multinode::Nodes nodes;
  try {
    nodes = multinode::listen(options, server);
  } catch (const std::system_error& error) {
    std::cerr << "websocket_echo: " << error.what() << "\n";
    return 1;
  }
  return nodes.run();
}

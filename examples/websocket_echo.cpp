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

#include "command_line.hpp"

#include <iostream>
#include <string_view>
#include <system_error>

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  multinode::websocket::Options ws_options;
  CLI::App app{"WebSocket echo at / on several processes", "websocket_echo"};
  examples::add_listen_options(app, options);
  app.add_flag("--deflate", ws_options.permessage_deflate, "Agree to permessage-deflate");
  auto* threshold = app.add_option("--deflate-threshold", ws_options.deflate_threshold,
                                   "Compress messages of at least BYTES (implies --deflate)");
  if (const auto status = examples::parse(app, argc, argv)) return *status;
  if (threshold->count() > 0) ws_options.permessage_deflate = true;

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

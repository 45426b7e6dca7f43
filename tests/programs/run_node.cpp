// A library program as a worker of `multinode run`, for tests/integration/run_worker_test.cpp:
// an HTTP server (GET answers "node <id> pid <pid> master <0|1>") that sends each
// mesh peer a text, a binary and a JSON message and checks theirs. It says on
// stdout, one line each: "started node <id> slot <slot> master <0|1> host <host id>",
// "peer <id> slot <slot>", "verified <text|binary|json> from <id>",
// "ended <id>", and "stopped" once run() returned; with a bridge, "received '<text>'
// host <h> node <n>" for what other processes published on channel "t".
//
//   run_node [--stop-timeout MS]
#include <multinode/http.hpp>
#include <multinode/multinode.hpp>

#include "../../examples/mesh_messages.hpp"

#include <boost/json.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>

using multinode::Message;
using multinode::NodeId;

int main(int argc, char** argv) {
  // Port and nodes are the supervisor's business here: these values are ignored.
  multinode::Options options{.port = 1, .nodes = 5};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--stop-timeout" && i + 1 < argc) {
      options.stop_timeout = std::chrono::milliseconds{std::atoll(argv[++i])};
    } else {
      std::cerr << "usage: run_node [--stop-timeout MS]\n";
      return 2;
    }
  }
  // The server outlives the handle (declared first): the handle is reached through a pointer.
  multinode::Nodes* handle = nullptr;
  multinode::http::Server server(
      [&handle](multinode::http::Request& request, multinode::http::Response& res) {
        multinode::Nodes& nodes = *handle;
        res.set("Content-Type", "text/plain");
        if (request.target() == "/slow") {
          // Work in hand when a stop begins: answered after 500 ms all the same.
          auto timer =
              std::make_shared<boost::asio::steady_timer>(nodes.io_context(), std::chrono::milliseconds{500});
          timer->async_wait([timer, res](boost::system::error_code) mutable { res.end("slow done\n"); });
          return;
        }
        res.end("node " + std::to_string(nodes.id()) + " pid " + std::to_string(::getpid()) + " master " +
                (nodes.is_master() ? "1" : "0") + "\n");
      });
  multinode::Nodes nodes;
  handle = &nodes;
  try {
    nodes = multinode::listen(options, server);
  } catch (const std::system_error& error) {
    std::cerr << "run_node: " << error.what() << "\n";
    return 1;
  }
  const NodeId me = nodes.id();
  std::cout << "started node " << me << " slot " << nodes.slot() << " master " << (nodes.is_master() ? 1 : 0)
            << " host " << nodes.host_id() << std::endl;
  // With MULTINODE_BRIDGE: publishes "bridged from <id>" on channel "t" every 100 ms
  // (at most 100 times) while the link is up, and says what it receives.
  boost::asio::steady_timer publish_timer(nodes.io_context());
  int published = 0;
  std::function<void()> publish_next = [&] {
    if (published++ >= 100 || !nodes.publish("t", Message::text("bridged from " + std::to_string(me))))
      return;
    publish_timer.expires_after(std::chrono::milliseconds{100});
    publish_timer.async_wait([&](boost::system::error_code error) {
      if (!error) publish_next();
    });
  };
  nodes.subscribe("t", [](const Message& message, const multinode::BridgeOrigin& from) {
    std::cout << "received '" << message.bytes() << "' host " << from.host << " node " << from.node
              << std::endl;
  });
  nodes.on_bridge_state([&](multinode::BridgeLinkState state) {
    if (state == multinode::BridgeLinkState::up && published == 0) publish_next();
  });
  nodes.on_stop([&publish_timer] { publish_timer.cancel(); });
  nodes.on_node([me](multinode::Stream stream) {
    auto framed = multinode::frame_stream(stream);
    const NodeId peer = framed.peer_id();
    std::cout << "peer " << peer << " slot " << framed.peer_slot() << std::endl;
    framed.on_message([me, peer](const Message& message) {
      if (message.is_text() && message.bytes() == examples::text_for(peer, me))
        std::cout << "verified text from " << peer << std::endl;
      else if (message.is_binary() && message.bytes() == examples::binary_for(peer, me))
        std::cout << "verified binary from " << peer << std::endl;
      else if (message.is_json() && message.json_value() == examples::json_for(peer, me))
        std::cout << "verified json from " << peer << std::endl;
      else
        std::cout << "unexpected message from " << peer << std::endl;
    });
    framed.on_close([peer](std::error_code) { std::cout << "ended " << peer << std::endl; });
    framed.send(Message::text(examples::text_for(me, peer)));
    framed.send(Message::binary(examples::binary_for(me, peer)));
    framed.send(Message::json(examples::json_for(me, peer)));
  });
  const int status = nodes.run();
  std::cout << "stopped" << std::endl;
  return status;
}

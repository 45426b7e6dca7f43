// A C++ worker for `multinode run`, on the library: an HTTP server that answers
// every request with the node that served it, and logs the mesh peers it meets
// (the other workers of the same supervisor, whatever their language).
//
//   multinode run -n 2 -p 8080 -- build/release/examples/run_hello
//
// Started by `multinode run`, listen() knows it is a worker (docs/cli.md, "C++
// programs under multinode run"): it serves the socket the supervisor passed, in
// this process, and Options::port and Options::nodes are the supervisor's -p and
// -n. Started alone, the same program is a library master with its own workers.
#include <multinode/http.hpp>
#include <multinode/nodes.hpp>

#include <unistd.h>
#include <iostream>
#include <string>
#include <system_error>

int main() {
  multinode::Options options{.port = 8080, .nodes = 2};  // used only when started alone
  std::string greeting;
  multinode::http::Server server([&greeting](multinode::http::Request&, multinode::http::Response& res) {
    res.set("Content-Type", "text/plain");
    res.end(greeting);
  });
  multinode::Nodes nodes;
  try {
    nodes = multinode::listen(options, server);
  } catch (const std::system_error& error) {
    std::cerr << "run_hello: " << error.what() << "\n";
    return 1;
  }
  const std::string me = "node " + std::to_string(nodes.id());
  greeting = "Hello from " + me + " (pid " + std::to_string(::getpid()) + ", C++)\n";
  std::cout << me << " serving" << (nodes.is_master() ? " (holds the master role)" : "") << std::endl;
  nodes.on_node([me](multinode::Stream stream) {
    auto framed = multinode::frame_stream(stream);
    const auto peer = framed.peer_id();
    std::cout << me << ": peer node " << peer << " (slot " << framed.peer_slot() << ") joined" << std::endl;
    framed.on_message([me, peer](const multinode::Message& message) {
      if (message.is_text()) std::cout << me << ": node " << peer << " says " << message.bytes() << std::endl;
    });
    framed.on_close(
        [me, peer](std::error_code) { std::cout << me << ": peer node " << peer << " left" << std::endl; });
    framed.send_text("hello from " + me + " (C++)");
  });
  return nodes.run();
}

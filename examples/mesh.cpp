// Every process talks to every other one over the mesh: each node sends a text,
// a binary and a JSON message to each peer and checks what it receives from
// them. Workers report their count to the master, which prints one line and
// exits 0 once every message has arrived intact and in order.
//
//   mesh [--nodes N] [--timeout SECONDS]
#include <multinode/multinode.hpp>

#include "command_line.hpp"
#include "mesh_messages.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

using multinode::Message;
using multinode::NodeId;

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 3};
  int timeout_seconds = 30;
  CLI::App app{"Every process sends every other one messages over the mesh and checks them", "mesh"};
  app.add_option("--nodes", options.nodes, "Processes, the master included")
      ->check(CLI::Range(1U, 4096U))
      ->capture_default_str();
  app.add_option("--timeout", timeout_seconds, "Give up after SECONDS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  if (const auto status = examples::parse(app, argc, argv)) return *status;

  auto nodes = multinode::listen(options);
  const unsigned peers = options.nodes - 1;  // the master serves too: it is one of the nodes
  const NodeId me = nodes.id();
  std::map<NodeId, int> received;  // messages verified, per peer
  int verified_here = 0, peers_done = 0;
  int reports = 0, verified_everywhere = 0;  // master only
  bool complete = false;
  multinode::FramedStream to_master;
  boost::asio::steady_timer deadline(nodes.io_context());

  auto finish_if_complete = [&] {
    if (!nodes.is_master() || reports != static_cast<int>(peers) || peers_done != static_cast<int>(peers))
      return;
    complete = true;
    verified_everywhere += verified_here;
    std::cout << "mesh: " << options.nodes << " nodes, " << verified_everywhere
              << " messages verified (text, binary and JSON between every pair)" << std::endl;
    deadline.cancel();
    nodes.stop();
  };

  nodes.on_node([&](multinode::Stream stream) {
    auto framed = multinode::frame_stream(stream);
    const NodeId peer = framed.peer_id();
    if (peer == 0) to_master = framed;
    framed.on_message([&, peer](const Message& message) {
      int& count = received[peer];
      if (count == 3) {  // after the three test messages, a worker's report to the master
        verified_everywhere += static_cast<int>(message.json_value().at("verified").as_int64());
        ++reports;
        finish_if_complete();
        return;
      }
      const bool ok =
          (count == 0 && message.is_text() && message.bytes() == examples::text_for(peer, me)) ||
          (count == 1 && message.is_binary() && message.bytes() == examples::binary_for(peer, me)) ||
          (count == 2 && message.is_json() && message.json_value() == examples::json_for(peer, me));
      if (!ok) {
        std::cerr << "mesh: node " << me << " got a wrong message " << count << " from node " << peer << "\n";
        std::exit(1);
      }
      ++verified_here;
      if (++count < 3 || ++peers_done < static_cast<int>(peers)) return;
      if (nodes.is_master())
        finish_if_complete();
      else
        to_master.send(boost::json::object{{"verified", verified_here}});
    });
    framed.send(Message::text(examples::text_for(me, peer)));
    framed.send(Message::binary(examples::binary_for(me, peer)));
    framed.send(examples::json_for(me, peer));
  });

  if (nodes.is_master()) {
    finish_if_complete();  // a single node has nothing to wait for
    deadline.expires_after(std::chrono::seconds(timeout_seconds));
    deadline.async_wait([&](boost::system::error_code error) {
      if (error) return;
      std::cout << "mesh: incomplete after " << timeout_seconds << " s: " << verified_here
                << " messages verified here, " << reports << " of " << peers << " workers reported"
                << std::endl;
      nodes.stop();
    });
  }
  nodes.on_stop([&] { deadline.cancel(); });
  const int status = nodes.run();
  return nodes.is_master() && !complete ? 1 : status;
}

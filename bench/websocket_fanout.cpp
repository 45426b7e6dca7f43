// The multinode server of bench/websocket.sh's broadcast fan-out. A message from
// any client goes to every other client of its process, encoded once into a
// websocket::Frame that all of them share, and over the mesh to every other
// process, which sends it to all of its clients, again as one Frame.
//
//   websocket_fanout [--port N] [--nodes N] [--host ADDRESS] [--balancing shared|reuseport]
//
// WebSocket upgrades are taken at `/`; anything else is answered 426 or 404.
#include <multinode/http.hpp>
#include <multinode/nodes.hpp>
#include <multinode/websocket.hpp>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace websocket = multinode::websocket;

namespace {

// This process's clients, in a vector for a fast loop over all of them. A client
// that closes while a broadcast loops over the vector is removed after the loop.
class Clients {
 public:
  void add(const std::shared_ptr<websocket::Connection>& client) {
    position_[client.get()] = list_.size();
    list_.push_back(client);
  }

  void remove(websocket::Connection* client) {
    if (sending_) {
      closed_.push_back(client);
      return;
    }
    const auto found = position_.find(client);
    if (found == position_.end()) return;
    const std::size_t at = found->second;
    position_.erase(found);
    if (at + 1 != list_.size()) {
      list_[at] = std::move(list_.back());
      position_[list_[at].get()] = at;
    }
    list_.pop_back();
  }

  // To every client but `except`; a client too slow to take it is closed by the
  // library (max_buffered_bytes), which bounds what it makes this process hold.
  void send(const websocket::Frame& frame, const websocket::Connection* except) {
    sending_ = true;
    for (const auto& client : list_) {
      if (client.get() != except) client->send(frame);
    }
    sending_ = false;
    for (auto* client : std::vector<websocket::Connection*>(std::move(closed_))) remove(client);
    closed_.clear();
  }

  // Drops every handle (after run(), while the io_context still exists).
  void clear() {
    auto list = std::move(list_);
    list_.clear();
    position_.clear();
  }

  void close_all() {
    for (const auto& client : std::vector<std::shared_ptr<websocket::Connection>>(list_))
      client->close(websocket::close_code::going_away);
  }

 private:
  std::vector<std::shared_ptr<websocket::Connection>> list_;
  std::unordered_map<const websocket::Connection*, std::size_t> position_;
  std::vector<websocket::Connection*> closed_;
  bool sending_ = false;
};

websocket::Frame frame_of(std::string_view data, bool text) {
  return text ? websocket::Frame::text(data) : websocket::Frame::binary(data);
}

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (arg == "--nodes" && has_value) {
      options.nodes = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (arg == "--host" && has_value) {
      options.host = argv[++i];
    } else if (arg == "--balancing" && has_value) {
      const std::string_view balancing = argv[++i];
      if (balancing == "shared") {
        options.balancing = multinode::Balancing::shared;
      } else if (balancing == "reuseport") {
        options.balancing = multinode::Balancing::reuseport;
      } else {
        std::cerr << "websocket_fanout: --balancing must be shared or reuseport, not '" << balancing << "'\n";
        return 2;
      }
    } else {
      std::cerr << "usage: websocket_fanout [--port N] [--nodes N] [--host ADDRESS] [--balancing "
                   "shared|reuseport]\n";
      return 2;
    }
  }

  Clients clients;
  multinode::Nodes* nodes = nullptr;  // set once listen() returned; no request comes before run()

  multinode::http::Server server([&](multinode::http::Request& request, multinode::http::Response& response) {
    if (request.path() != "/") return response.status(404).end("not found\n");
    if (!websocket::is_upgrade(request)) {
      response.status(426).set("Upgrade", "websocket");
      return response.end("upgrade to WebSocket at /\n");
    }
    auto client = websocket::accept(request, response);
    if (!client) return;  // accept() answered it
    websocket::Connection* self = client.get();
    client->on_message([&clients, &nodes, self](std::string_view data, websocket::Kind kind) {
      const bool text = kind == websocket::Kind::text;
      clients.send(frame_of(data, text), self);
      nodes->broadcast(text ? multinode::Message::text_view(data) : multinode::Message::binary_view(data));
    });
    client->on_close([&clients, self](std::uint16_t, std::string_view) { clients.remove(self); });
    clients.add(client);
  });

  multinode::Nodes mesh;
  try {
    mesh = multinode::listen(options, server);
  } catch (const std::system_error& error) {
    std::cerr << "websocket_fanout: " << error.what() << "\n";
    return 1;
  }
  nodes = &mesh;
  mesh.on_node([&clients](multinode::Stream stream) {
    multinode::frame_stream(stream).on_message([&clients](const multinode::Message& message) {
      clients.send(frame_of(message.bytes(), message.is_text()), nullptr);
    });
  });
  mesh.on_stop([&clients] { clients.close_all(); });
  const int status = mesh.run();
  clients.clear();
  return status;
}

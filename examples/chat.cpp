// A chat room in the browser, served by several processes: the page (examples/chat/
// static: HTML, CSS, JavaScript, nothing fetched from elsewhere) and a WebSocket at
// /ws. A line typed in a tab served by one process appears in the tabs of every
// process; the room's history (the last 100 lines) and who is online are kept by
// every process and replicated over the mesh, so a tab that joins on any process
// sees the same, and a process that is replaced gets them back from its peers.
//
//   chat [--port N] [--nodes N] [--host ADDRESS] [--balancing shared|reuseport]
//        [--static DIR] [--history N] [--max-message BYTES] [--max-nick BYTES]
//        [--max-text BYTES] [--rate PER_SECOND] [--burst N] [--max-buffered BYTES]
//        [--sync-timeout MS] [--bridge redis://HOST:PORT[/DB]] [--bridge-prefix PREFIX]
//
// scripts/demo.sh starts it on :8080, one process per core: open two tabs.
//
// The WebSocket protocol: JSON text frames.
//   server to client, first:  {"type":"welcome","node":ID,"pid":PID,"history":[LINE...],"online":[NICK...]}
//   client to server:         {"type":"nick","name":"…"}   {"type":"say","text":"…"}
//   server to every client of every process:
//                             {"type":"message","from":"…","text":"…","node":ID,"time":MS}
//                             {"type":"online","users":[NICK...]}
// A LINE of the history is a message without its "type". A client is "guest-<node>-<n>"
// until it sends a nick. Only that client is closed for what it sends wrong: a frame
// that breaks RFC 6455 (1002), a binary frame (1003), a frame over --max-message
// (1009), text that is not UTF-8 (1007), anything but the two messages above or a
// nick or text over its limit (1008), and more than --burst messages at once or
// --rate a second sustained (1008). One that reads too slowly, with more than
// --max-buffered bytes waiting for it, is closed too (1008).
//
// Between processes (the mesh; JSON frames, see chat/room.hpp and docs/chat.md):
//   {"type":"state","history":[...],"users":[...]}  sent on every new peer stream
//   {"type":"said",...a line with its "seq"}        a line said on the sending process
//   {"type":"users","users":[...]}                  the sending process's own users now
// A process answers its first clients only once it has the state of each other
// process (--nodes - 1 of them; or after --sync-timeout, or at once when it is
// alone), so a replacement's first tab already sees the history and everyone online.
//
// Across hosts (--bridge: several chat servers, each with its processes and port,
// joined by one Redis server; docs/bridge.md): every process also publishes the
// same three messages on the bridge channel "chat" and applies those of the
// processes of other hosts (their own host's come over the mesh). Lines and users
// are keyed by (host, node). A process publishes its state when its link to Redis
// comes up and to every process of another host it hears of for the first time,
// and its users every --presence-ms; the users of a process of another host not
// heard of for three times that leave the list.
#include "chat/room.hpp"
#include "command_line.hpp"

#include <multinode/multinode.hpp>
#include <multinode/websocket.hpp>

#include <boost/asio/steady_timer.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace http = multinode::http;
namespace websocket = multinode::websocket;

namespace {

#ifdef MULTINODE_CHAT_STATIC_DIR
constexpr const char* default_static_dir = MULTINODE_CHAT_STATIC_DIR;
#else
constexpr const char* default_static_dir = "examples/chat/static";
#endif

struct Settings {
  std::size_t history = 100;
  chat::Limits limits;
  websocket::Options socket;
  std::chrono::milliseconds sync_timeout{2000};
  bool bridged = false;
  std::chrono::milliseconds presence_interval{5000};
  std::string static_dir = default_static_dir;
};

struct StaticFile {
  std::string content_type;
  std::string body;
};

// The page's files, read once before listen() (every process has them in memory).
bool load_static(const std::string& dir, std::map<std::string, StaticFile, std::less<>>& files) {
  const std::pair<const char*, const char*> wanted[] = {{"index.html", "text/html; charset=utf-8"},
                                                        {"chat.css", "text/css; charset=utf-8"},
                                                        {"chat.js", "text/javascript; charset=utf-8"}};
  for (const auto& [name, type] : wanted) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    if (!in) {
      std::cerr << "chat: cannot read " << dir << "/" << name
                << ": pass --static DIR, the folder with index.html, chat.css and chat.js"
                   " (examples/chat/static in the repository)\n";
      return false;
    }
    std::ostringstream body;
    body << in.rdbuf();
    files["/" + std::string(name)] = {type, body.str()};
  }
  files["/"] = files["/index.html"];
  return true;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Chat {
 public:
  Chat(const Settings& settings, std::map<std::string, StaticFile, std::less<>> files)
      : settings_(settings), files_(std::move(files)) {}

  // Once listen() has said which process this is; others: how many other processes
  // there are to hear the state of before the first welcome.
  void attach(multinode::Nodes& nodes, unsigned others) {
    others_ = others;
    nodes_ = &nodes;
    room_.emplace(nodes.id(), settings_.history, settings_.bridged ? nodes.host_id() : 0);
    sync_timer_.emplace(nodes.io_context());
    if (settings_.bridged) attach_bridge(nodes);
    if (others == 0) {
      synced();
    } else {
      sync_timer_->expires_after(settings_.sync_timeout);
      sync_timer_->async_wait([this](boost::system::error_code error) {
        if (!error) synced();
      });
    }
    nodes.on_node([this](multinode::Stream stream) { on_peer(std::move(stream)); });
    nodes.on_stop([this] {
      stopping_ = true;
      sync_timer_->cancel();
      if (presence_timer_) presence_timer_->cancel();
      for (auto& [id, client] : std::map(clients_)) client.socket->close(websocket::close_code::going_away);
    });
  }

  // Every HTTP request: the page's files, the WebSocket, 404 for the rest.
  void serve(http::Request& request, http::Response& response) {
    if (request.path() == "/ws") return accept(request, response);
    if (request.method() != "GET" && request.method() != "HEAD") {
      return response.status(405)
          .set("Allow", "GET, HEAD")
          .set("Content-Type", "text/plain")
          .end("GET only\n");
    }
    auto file = files_.find(request.path());
    if (file == files_.end())
      return response.status(404).set("Content-Type", "text/plain").end("not found\n");
    response.set("Content-Type", file->second.content_type)
        .set("Cache-Control", "no-cache")
        .set("X-Content-Type-Options", "nosniff")
        // The page loads nothing but its own files and its own WebSocket.
        .set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        .end(file->second.body);
  }

  void clear() {
    clients_.clear();
    sync_timer_.reset();
    presence_timer_.reset();
  }

 private:
  struct Client {
    std::shared_ptr<websocket::Connection> socket;
    chat::RateLimit rate;
    bool welcomed = false;
  };

  void accept(http::Request& request, http::Response& response) {
    auto socket = websocket::accept(request, response, settings_.socket);
    if (!socket) return;  // accept() answered a request that is not a valid upgrade
    if (stopping_) return socket->close(websocket::close_code::going_away);
    const std::uint64_t id = ++last_client_;
    clients_.emplace(
        id, Client{socket, chat::RateLimit(settings_.limits.messages_per_second, settings_.limits.burst,
                                           chat::RateLimit::Clock::now())});
    socket->on_message(
        [this, id](std::string_view data, websocket::Kind kind) { on_client(id, data, kind); });
    socket->on_close([this, id](std::uint16_t, std::string_view) { drop_client(id); });
    // Across hosts node ids repeat: the guest's name has its host's first digits too.
    const std::string host = settings_.bridged ? chat::host_text(room_->host()).substr(0, 4) + "-" : "";
    room_->join(id, "guest-" + host + std::to_string(room_->self()) + "-" + std::to_string(id));
    if (synced_) welcome(id);
    users_changed();
  }

  void welcome(std::uint64_t id) {
    auto& client = clients_.at(id);
    client.welcomed = true;
    client.socket->send(room_->welcome_frame(::getpid()));
  }

  void on_client(std::uint64_t id, std::string_view data, websocket::Kind kind) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    if (kind != websocket::Kind::text)
      return close_client(id, websocket::close_code::unsupported_data, "text frames only");
    if (!it->second.rate.allow(chat::RateLimit::Clock::now()))
      return close_client(id, websocket::close_code::policy_violation, "too many messages");
    const auto message = chat::parse_client_message(data, settings_.limits);
    switch (message.kind) {
      case chat::ClientMessage::Kind::invalid:
        return close_client(id, websocket::close_code::policy_violation, message.value);
      case chat::ClientMessage::Kind::nick:
        room_->rename(id, message.value);
        return users_changed();
      case chat::ClientMessage::Kind::say: {
        const chat::Entry entry = room_->say(room_->nick(id), message.value, now_ms());
        to_local_clients(chat::Room::message_frame(entry));
        nodes_->broadcast(chat::Room::said_message(entry));
        if (settings_.bridged) nodes_->publish(bridge_channel, chat::Room::said_message(entry));
        return;
      }
    }
  }

  // A client that is closing has left the room, although its closing handshake (and
  // its on_close) may take up to handshake_timeout yet.
  void close_client(std::uint64_t id, std::uint16_t code, std::string_view reason) {
    clients_.at(id).socket->close(code, reason);
    drop_client(id);
  }

  void drop_client(std::uint64_t id) {
    if (clients_.erase(id) == 0) return;
    room_->leave(id);
    if (!stopping_) users_changed();
  }

  // This process's users changed: every local tab gets the new list, every peer our users.
  void users_changed() {
    to_local_clients(room_->online_frame());
    nodes_->broadcast(room_->users_message());
    if (settings_.bridged) nodes_->publish(bridge_channel, room_->users_message());
  }

  // --bridge: the processes of the other hosts, through Redis.
  static constexpr std::string_view bridge_channel = "chat";
  using Remote = std::pair<std::uint64_t, multinode::NodeId>;

  void attach_bridge(multinode::Nodes& nodes) {
    presence_timer_.emplace(nodes.io_context());
    nodes.subscribe(
        bridge_channel,
        [this](const multinode::Message& message, const multinode::BridgeOrigin& from) {
          on_remote(message, from);
        },
        multinode::BridgeScope::other_hosts);
    nodes.on_bridge_state([this](multinode::BridgeLinkState state) {
      if (state == multinode::BridgeLinkState::up && !stopping_)
        nodes_->publish(bridge_channel, room_->state_message());
    });
    arm_presence();
  }

  void on_remote(const multinode::Message& message, const multinode::BridgeOrigin& from) {
    if (stopping_ || !message.is_json()) return;
    const Remote remote{from.host, from.node};
    const bool first = last_heard_.find(remote) == last_heard_.end();
    last_heard_[remote] = std::chrono::steady_clock::now();
    auto update = room_->apply_from(from.host, from.node, message.json_value());
    if (update.invalid) {
      std::cerr << "chat: node " << room_->self() << " ignored a bridge message from host "
                << chat::host_text(from.host) << " node " << from.node
                << " that is not of the chat's protocol\n";
      return;
    }
    for (const auto& entry : update.new_entries) to_local_clients(chat::Room::message_frame(entry));
    if (update.online_changed) to_local_clients(room_->online_frame());
    // A process of another host we had not heard of: it gets our state once.
    if (first) nodes_->publish(bridge_channel, room_->state_message());
  }

  // Every presence interval: our users to the other hosts, and theirs that went silent leave.
  void arm_presence() {
    presence_timer_->expires_after(settings_.presence_interval);
    presence_timer_->async_wait([this](boost::system::error_code error) {
      if (error || stopping_) return;
      nodes_->publish(bridge_channel, room_->users_message());
      const auto now = std::chrono::steady_clock::now();
      bool changed = false;
      for (auto it = last_heard_.begin(); it != last_heard_.end();) {
        if (now - it->second > settings_.presence_interval * 3) {
          changed = room_->drop_remote(it->first.first, it->first.second) || changed;
          it = last_heard_.erase(it);
        } else {
          ++it;
        }
      }
      if (changed) to_local_clients(room_->online_frame());
      arm_presence();
    });
  }

  void to_local_clients(const std::string& frame) {
    const auto encoded = websocket::Frame::text(frame);  // encoded once, shared by every connection
    std::vector<std::uint64_t> closing;
    for (const auto& [id, client] : clients_) {
      // A client too slow (past max_buffered_bytes) is being closed with 1008: it leaves now.
      if (client.welcomed && !client.socket->send(encoded) && !client.socket->is_open())
        closing.push_back(id);
    }
    for (const auto id : closing) drop_client(id);  // not while iterating clients_
  }

  void on_peer(multinode::Stream stream) {
    auto framed = multinode::frame_stream(std::move(stream));
    const multinode::NodeId peer = framed.peer_id();
    framed.on_message([this, peer](const multinode::Message& message) {
      if (!message.is_json()) return;
      auto update = room_->apply(peer, message.json_value());
      if (update.invalid) {
        std::cerr << "chat: node " << room_->self() << " ignored a message from node " << peer
                  << " that is not of the chat's mesh protocol\n";
        return;
      }
      for (const auto& entry : update.new_entries) to_local_clients(chat::Room::message_frame(entry));
      if (update.online_changed) to_local_clients(room_->online_frame());
      if (update.was_state && !synced_ && states_from_.insert(peer).second && states_from_.size() >= others_)
        synced();
    });
    framed.on_close([this, peer](std::error_code) {
      if (room_->drop_peer(peer) && !stopping_) to_local_clients(room_->online_frame());
    });
    framed.send(room_->state_message());
  }

  // The state is here: clients that waited for it get their welcome.
  void synced() {
    if (synced_) return;
    synced_ = true;
    sync_timer_->cancel();
    for (auto& [id, client] : clients_) {
      if (!client.welcomed) welcome(id);
    }
  }

  Settings settings_;
  std::map<std::string, StaticFile, std::less<>> files_;
  multinode::Nodes* nodes_ = nullptr;
  std::optional<chat::Room> room_;
  std::optional<boost::asio::steady_timer> sync_timer_;
  std::optional<boost::asio::steady_timer> presence_timer_;
  std::map<Remote, std::chrono::steady_clock::time_point> last_heard_;  // processes of other hosts
  std::map<std::uint64_t, Client> clients_;
  std::uint64_t last_client_ = 0;
  bool synced_ = false;
  unsigned others_ = 0;                      // the processes whose state the first welcome waits for
  std::set<multinode::NodeId> states_from_;  // those heard from so far
  bool stopping_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  Settings settings;
  settings.socket.max_message_bytes = 4096;
  CLI::App app{"A chat room in the browser, served by several processes", "chat"};
  examples::add_listen_options(app, options);
  examples::add_balancing_option(app, options);
  constexpr std::size_t most = std::size_t{1} << 40;
  app.add_option("--static", settings.static_dir, "The page's directory")->capture_default_str();
  app.add_option("--history", settings.history, "Lines of history kept")
      ->check(CLI::Range(std::size_t{1}, most))
      ->capture_default_str();
  app.add_option("--max-message", settings.socket.max_message_bytes, "Largest WebSocket message, in bytes")
      ->check(CLI::Range(std::size_t{64}, most))
      ->capture_default_str();
  app.add_option("--max-nick", settings.limits.max_nick_bytes, "Longest nick, in bytes")
      ->check(CLI::Range(std::size_t{1}, most))
      ->capture_default_str();
  app.add_option("--max-text", settings.limits.max_text_bytes, "Longest line, in bytes")
      ->check(CLI::Range(std::size_t{1}, most))
      ->capture_default_str();
  app.add_option("--rate", settings.limits.messages_per_second,
                 "Messages a second a client may send, sustained")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--burst", settings.limits.burst, "Messages a client may send at once")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--max-buffered", settings.socket.max_buffered_bytes, "Bytes waiting for a slow client")
      ->check(CLI::Range(std::size_t{1024}, most))
      ->capture_default_str();
  examples::add_milliseconds(app, "--sync-timeout", settings.sync_timeout,
                             "How long a new process waits for its peers' state (ms)");
  app.add_option("--bridge", options.bridge, "redis://HOST:PORT[/DB]: the chat across hosts");
  app.add_option("--bridge-prefix", options.bridge_prefix, "The Redis channel prefix")->capture_default_str();
  examples::add_milliseconds(app, "--presence-ms", settings.presence_interval,
                             "With --bridge: how often each process says who is online on it (ms)")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{1} << 40));
  if (const auto status = examples::parse(app, argc, argv)) return *status;

  settings.bridged = !options.bridge.empty();
  std::map<std::string, StaticFile, std::less<>> files;
  if (!load_static(settings.static_dir, files)) return 1;
  Chat chat(settings, std::move(files));
  http::Server server(
      [&chat](http::Request& request, http::Response& response) { chat.serve(request, response); });
  multinode::Nodes nodes;
  try {
    nodes = multinode::listen(options, server);
  } catch (const std::system_error& error) {  // what failed and what to do, e.g. a port in use
    std::cerr << "chat: " << error.what() << "\n";
    return 1;
  }
  chat.attach(nodes, options.nodes - 1);
  if (nodes.is_master()) {
    std::cerr << "chat: open http://" << (options.host.empty() ? "127.0.0.1" : options.host) << ":"
              << nodes.local_port() << "/ in two tabs (" << options.nodes << " processes)\n";
  }
  const int status = nodes.run();
  chat.clear();  // while the io_context the sockets and the timer belong to still exists
  return status;
}

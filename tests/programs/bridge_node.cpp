// One "host" for the bridge's integration tests (tests/integration/redis_bridge_test.cpp):
// a master and its workers, every process subscribed to channel "t" through
// Options::bridge. Every line is one write(2) on stdout:
//   up <node>                                   the process's link to Redis is up
//   recv <node> <from-host> <from-node> <kind> <content>   a message on "t"
//   done <published> <dropped> <reconnects>     the publisher's figures, once its queue is empty
//
//   bridge_node --bridge URL [--nodes N] [--prefix P] [--control PATH] [--metrics HOST:PORT]
//               [--publish-on FILE --count K [--interval-us U]]
// --publish-on: the master, once FILE exists, publishes K rounds of a text "t<i>",
// a binary "b<i>" and a JSON {"i":i} on "t", one round every U microseconds.
#include <multinode/multinode.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace {

void say(const std::string& line) {
  const std::string out = line + "\n";
  [[maybe_unused]] const auto written = ::write(1, out.data(), out.size());
}

struct Publisher {
  multinode::Nodes* nodes = nullptr;
  std::string trigger;
  unsigned count = 0;
  std::chrono::microseconds interval{0};
  unsigned next = 0;
  std::optional<boost::asio::steady_timer> timer;

  void wait_for_trigger() {
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([this](boost::system::error_code error) {
      if (error) return;
      struct stat st {};
      if (::stat(trigger.c_str(), &st) != 0) return wait_for_trigger();
      round();
    });
  }
  void round() {
    const std::string i = std::to_string(next);
    nodes->publish("t", multinode::Message::text("t" + i));
    nodes->publish("t", multinode::Message::binary("b" + i));
    nodes->publish("t", boost::json::object{{"i", next}});
    if (++next == count) return finish();
    timer->expires_after(interval);
    timer->async_wait([this](boost::system::error_code error) {
      if (!error) round();
    });
  }
  void finish() {
    const auto c = nodes->bridge_counters();
    if (c.queued_bytes == 0 && c.published + c.dropped >= std::uint64_t{count} * 3) {
      say("done " + std::to_string(c.published) + " " + std::to_string(c.dropped) + " " +
          std::to_string(c.reconnects));
      return;
    }
    timer->expires_after(std::chrono::milliseconds(10));
    timer->async_wait([this](boost::system::error_code error) {
      if (!error) finish();
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 2, .host = "127.0.0.1"};
  options.bridge_reconnect_delay = std::chrono::milliseconds(50);
  options.bridge_reconnect_delay_max = std::chrono::milliseconds(400);
  Publisher publisher;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    const char* value = argv[i + 1];
    if (arg == "--bridge")
      options.bridge = value;
    else if (arg == "--nodes")
      options.nodes = static_cast<unsigned>(std::atoi(value));
    else if (arg == "--prefix")
      options.bridge_prefix = value;
    else if (arg == "--control")
      options.control_socket = value;
    else if (arg == "--metrics")
      options.metrics_listen = value;
    else if (arg == "--publish-on")
      publisher.trigger = value;
    else if (arg == "--count")
      publisher.count = static_cast<unsigned>(std::atoi(value));
    else if (arg == "--interval-us")
      publisher.interval = std::chrono::microseconds(std::atoi(value));
    else {
      std::cerr << "bridge_node: bad argument " << arg << "\n";
      return 2;
    }
  }
  multinode::Nodes nodes = multinode::listen(options);
  const std::string self = std::to_string(nodes.id());
  nodes.subscribe("t", [&self](const multinode::Message& message, const multinode::BridgeOrigin& from) {
    std::string content;
    const char* kind = "text";
    if (message.is_json()) {
      kind = "json";
      content = boost::json::serialize(message.json_value());
    } else {
      kind = message.is_text() ? "text" : "binary";
      content = std::string(message.bytes());
    }
    say("recv " + self + " " + std::to_string(from.host) + " " + std::to_string(from.node) + " " + kind +
        " " + content);
  });
  nodes.on_bridge_state([&self](multinode::BridgeLinkState state) {
    if (state == multinode::BridgeLinkState::up) say("up " + self);
  });
  if (nodes.is_master() && !publisher.trigger.empty() && publisher.count > 0) {
    publisher.nodes = &nodes;
    publisher.timer.emplace(nodes.io_context());
    publisher.wait_for_trigger();
    nodes.on_stop([&publisher] { publisher.timer->cancel(); });
  }
  if (nodes.is_master()) say("host " + std::to_string(nodes.host_id()));
  const int status = nodes.run();
  publisher.timer.reset();
  return status;
}

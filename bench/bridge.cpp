// One host of bench/bridge.sh: a master and its workers bridged to Redis
// (Options::bridge), every process receiving channel "bench".
//   bridge --bridge URL --prefix P [--nodes N] [--placement process|relay]
//          [--publish --from NODE --rate R --seconds S --size B]
// Where the connection to Redis lives (docs/bridge.md, "Where the connection lives"):
//   process  every process has its own bridge (the library as it is): each one
//            publishes and is subscribed on Redis itself.
//   relay    only the master holds the bridge, the workers start without one; a
//            worker sends what it publishes to the master over its mesh stream, and
//            the master publishes it on Redis and hands it to the host's other
//            workers; what comes from Redis the master hands to every worker. The
//            host's own messages never go through Redis to reach the host.
// Every receiving process measures, for each message, now - the CLOCK_MONOTONIC
// stamp the publisher put in it (one clock for every process of the machine), and
// on the "end" message prints one line on stdout:
//   result <node> <messages> <first_ns> <last_ns> <p50_us> <p99_us>
// The publisher (process NODE of the --publish host, 0 = the master) waits until
// it can publish (its link is up; in a relay worker: its stream to the master
// came) and a second more (the other host's links), publishes binary messages of
// B bytes at R a second (0: as fast as the queues drain) for S seconds, then "end".
#include <multinode/multinode.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

struct Receiver {
  std::vector<std::uint32_t> latencies_us;
  std::uint64_t first = 0, last = 0;
  bool done = false;
  void on(const multinode::Message& message, multinode::NodeId self) {
    if (done) return;
    if (message.is_text()) {  // "end"
      done = true;
      std::sort(latencies_us.begin(), latencies_us.end());
      auto at = [this](double q) {
        return latencies_us.empty() ? 0u
                                    : latencies_us[std::min(latencies_us.size() - 1,
                                                            std::size_t(q * double(latencies_us.size())))];
      };
      const std::string line = "result " + std::to_string(self) + " " + std::to_string(latencies_us.size()) +
                               " " + std::to_string(first) + " " + std::to_string(last) + " " +
                               std::to_string(at(0.5)) + " " + std::to_string(at(0.99)) + "\n";
      [[maybe_unused]] auto n = ::write(1, line.data(), line.size());
      return;
    }
    const auto bytes = message.bytes();
    if (bytes.size() < 8) return;
    std::uint64_t sent = 0;
    std::memcpy(&sent, bytes.data(), 8);
    const std::uint64_t now = now_ns();
    if (first == 0) first = now;
    last = now;
    latencies_us.push_back(static_cast<std::uint32_t>((now - sent) / 1000));
  }
};

// How a process publishes on "bench" and gets what the others publish, in one
// placement or the other.
class Channel {
 public:
  using Deliver = std::function<void(const multinode::Message&)>;

  Channel(multinode::Nodes& nodes, bool relay, Deliver deliver)
      : nodes_(nodes), relay_(relay), deliver_(std::move(deliver)) {
    // A relay worker has no bridge: subscribe() does nothing there.
    nodes_.subscribe("bench", [this](const multinode::Message& m, const multinode::BridgeOrigin&) {
      deliver_(m);
      if (relay_) {
        for (auto& worker : workers_) worker.send(m);  // from another host: to every worker here
      }
    });
    if (!relay_) return;
    nodes_.on_node([this](multinode::Stream stream) {
      const bool to_master = stream.peer_id() == 0;
      if (nodes_.is_master() == to_master) return;  // in the relay, workers talk to their master only
      auto framed = multinode::frame_stream(std::move(stream));
      if (to_master) {
        master_ = framed;
        framed.on_message([this](const multinode::Message& m) { deliver_(m); });
        if (on_ready_) std::exchange(on_ready_, nullptr)();
        return;
      }
      workers_.push_back(framed);
      const multinode::NodeId from = framed.peer_id();
      framed.on_message([this, from](const multinode::Message& m) { from_worker(from, m); });
      framed.on_close([this, from](std::error_code) {
        std::erase_if(workers_, [from](const multinode::FramedStream& s) { return s.peer_id() == from; });
      });
    });
  }

  // Runs once this process can publish: its link is up, or (a relay worker) its stream to the master came.
  void on_ready(std::function<void()> ready) {
    if (relay_ && !nodes_.is_master()) {
      if (master_) return ready();
      on_ready_ = std::move(ready);
      return;
    }
    nodes_.on_bridge_state([this, ready = std::move(ready)](multinode::BridgeLinkState state) mutable {
      if (state == multinode::BridgeLinkState::up && ready) std::exchange(ready, nullptr)();
    });
  }

  void publish(const multinode::Message& m) {
    if (relay_ && !nodes_.is_master()) {
      master_.send(m);
      return;
    }
    nodes_.publish("bench", m);
    if (relay_) {
      for (auto& worker : workers_) worker.send(m);
    }
  }

  // Bytes this process holds that have not left it yet: the publisher waits above 1 MiB.
  std::size_t backlog() const {
    std::size_t most = nodes_.bridge_counters().queued_bytes;
    if (master_) most = std::max(most, master_.buffered_amount());
    for (const auto& worker : workers_) most = std::max(most, worker.buffered_amount());
    return most;
  }

  multinode::BridgeCounters counters() const { return nodes_.bridge_counters(); }

 private:
  // The master of a relay: what a worker publishes goes to Redis, to the host's other workers and here.
  void from_worker(multinode::NodeId from, const multinode::Message& m) {
    nodes_.publish("bench", m);
    for (auto& worker : workers_) {
      if (worker.peer_id() != from) worker.send(m);
    }
    deliver_(m);
  }

  multinode::Nodes& nodes_;
  bool relay_;
  Deliver deliver_;
  multinode::FramedStream master_;                // a relay worker's stream to its master
  std::vector<multinode::FramedStream> workers_;  // a relay master's streams to its workers
  std::function<void()> on_ready_;
};

struct Publisher {
  Channel* channel = nullptr;
  double rate = 0;
  double seconds = 2;
  std::size_t size = 64;
  std::optional<boost::asio::steady_timer> timer;
  std::uint64_t start = 0, sent = 0;
  std::string payload;

  void begin() {
    payload.assign(std::max<std::size_t>(size, 8), 'x');
    start = now_ns();
    tick();
  }
  void tick() {
    const std::uint64_t now = now_ns();
    const double elapsed = double(now - start) / 1e9;
    if (elapsed >= seconds) return finish(0);
    std::uint64_t due = rate > 0 ? std::uint64_t(elapsed * rate) : sent + 256;
    if (rate <= 0 && channel->backlog() > 1024 * 1024) due = sent;  // let the queues drain
    for (; sent < due; ++sent) {
      const std::uint64_t stamp = now_ns();
      std::memcpy(payload.data(), &stamp, 8);
      channel->publish(multinode::Message::binary_view(payload));
    }
    timer->expires_after(std::chrono::microseconds(rate > 0 ? 100 : 0));
    timer->async_wait([this](boost::system::error_code error) {
      if (!error) tick();
    });
  }
  void finish(int round) {
    if (round == 0) {
      const auto c = channel->counters();
      std::cerr << "bridge: published " << sent << " (acknowledged by Redis " << c.published << ", dropped "
                << c.dropped << ")\n";
    }
    if (round == 5) return;
    channel->publish(multinode::Message::text("end"));
    timer->expires_after(std::chrono::milliseconds(200));
    timer->async_wait([this, round](boost::system::error_code error) {
      if (!error) finish(round + 1);
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 2, .host = "127.0.0.1"};
  Publisher publisher;
  bool publish = false;
  bool relay = false;
  multinode::NodeId from = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "";
    if (arg == "--publish") {
      publish = true;
      continue;
    }
    ++i;
    if (arg == "--bridge")
      options.bridge = value;
    else if (arg == "--prefix")
      options.bridge_prefix = value;
    else if (arg == "--nodes")
      options.nodes = unsigned(std::atoi(value));
    else if (arg == "--placement" &&
             (std::string_view(value) == "process" || std::string_view(value) == "relay"))
      relay = std::string_view(value) == "relay";
    else if (arg == "--from")
      from = multinode::NodeId(std::atoi(value));
    else if (arg == "--rate")
      publisher.rate = std::atof(value);
    else if (arg == "--seconds")
      publisher.seconds = std::atof(value);
    else if (arg == "--size")
      publisher.size = std::size_t(std::atoi(value));
    else {
      std::cerr << "bridge: bad argument " << arg << " " << value
                << " (see the usage at the top of bench/bridge.cpp)\n";
      return 2;
    }
  }
  options.bridge_max_queued = 64 * 1024 * 1024;
  // The relay: a worker (the master starts it with MULTINODE_WORKER_ID set) has no link of its own.
  if (relay && std::getenv("MULTINODE_WORKER_ID") != nullptr) options.bridge.clear();
  multinode::Nodes nodes = multinode::listen(options);
  Receiver receiver;
  const multinode::NodeId self = nodes.id();
  Channel channel(nodes, relay, [&receiver, self](const multinode::Message& m) { receiver.on(m, self); });
  if (publish && nodes.id() == from) {
    publisher.channel = &channel;
    publisher.timer.emplace(nodes.io_context());
    channel.on_ready([&publisher] {
      publisher.timer->expires_after(std::chrono::seconds(1));
      publisher.timer->async_wait([&publisher](boost::system::error_code error) {
        if (!error) publisher.begin();
      });
    });
    nodes.on_stop([&publisher] { publisher.timer->cancel(); });
  }
  const int status = nodes.run();
  publisher.timer.reset();
  return status;
}

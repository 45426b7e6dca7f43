// One host of bench/bridge.sh: a master and its workers bridged to Redis
// (Options::bridge), every process subscribed to channel "bench".
//   bridge --bridge URL --prefix P [--nodes N] [--publish --rate R --seconds S --size B]
// Every receiving process measures, for each message, now - the CLOCK_MONOTONIC
// stamp the publisher put in it (one clock for every process of the machine), and
// on the "end" message prints one line on stdout:
//   result <node> <messages> <first_ns> <last_ns> <p50_us> <p99_us>
// The publisher (the master of the --publish host) waits until its link is up and
// a second more (the other host's links), publishes binary messages of B bytes at R
// a second (0: as fast as the queue drains) for S seconds, then "end".
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
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
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

struct Publisher {
  multinode::Nodes* nodes = nullptr;
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
    const auto counters = nodes->bridge_counters();
    std::uint64_t due = rate > 0 ? std::uint64_t(elapsed * rate) : sent + 256;
    if (rate <= 0 && counters.queued_bytes > 1024 * 1024) due = sent;  // let the queue drain
    for (; sent < due; ++sent) {
      const std::uint64_t stamp = now_ns();
      std::memcpy(payload.data(), &stamp, 8);
      nodes->publish("bench", multinode::Message::binary_view(payload));
    }
    timer->expires_after(std::chrono::microseconds(rate > 0 ? 100 : 0));
    timer->async_wait([this](boost::system::error_code error) {
      if (!error) tick();
    });
  }
  void finish(int round) {
    if (round == 0) {
      const auto c = nodes->bridge_counters();
      std::cerr << "bridge: published " << sent << " (acknowledged " << c.published << ", dropped "
                << c.dropped << ")\n";
    }
    if (round == 5) return;
    nodes->publish("bench", multinode::Message::text("end"));
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
    else if (arg == "--rate")
      publisher.rate = std::atof(value);
    else if (arg == "--seconds")
      publisher.seconds = std::atof(value);
    else if (arg == "--size")
      publisher.size = std::size_t(std::atoi(value));
    else {
      std::cerr << "bridge: bad argument " << arg << "\n";
      return 2;
    }
  }
  options.bridge_max_queued = 64 * 1024 * 1024;
  multinode::Nodes nodes = multinode::listen(options);
  Receiver receiver;
  const multinode::NodeId self = nodes.id();
  nodes.subscribe("bench", [&receiver, self](const multinode::Message& m, const multinode::BridgeOrigin&) {
    receiver.on(m, self);
  });
  if (publish && nodes.is_master()) {
    publisher.nodes = &nodes;
    publisher.timer.emplace(nodes.io_context());
    nodes.on_bridge_state([&publisher](multinode::BridgeLinkState state) {
      if (state != multinode::BridgeLinkState::up || publisher.start != 0) return;
      publisher.start = 1;
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

// This process's bridge to Redis (Options::bridge): two connections on the event
// loop (one publishes, one is subscribed), each reconnecting with capped backoff;
// messages published while the publishing link is down wait in a bounded queue.
// docs/bridge.md describes the design, the faults and the figures.
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/frame.hpp>

#include "bridge/codec.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::detail {

class Bridge {
 public:
  struct Config {
    RedisUrl url;
    std::string prefix;
    std::size_t max_message = 0;
    std::size_t max_queued = 0;
    std::size_t max_json_depth = 64;
    std::chrono::milliseconds reconnect_delay{100};
    std::chrono::milliseconds reconnect_delay_max{5000};
    std::uint64_t host = 0;
    std::uint32_t node = 0;
  };
  using Handler = std::function<void(const Message&, const BridgeOrigin&)>;

  Bridge(boost::asio::io_context& io, Config config);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Connects (from the event loop: subscriptions made before are in the first SUBSCRIBE).
  void start();
  // Closes both links for good; nothing is delivered or reconnected afterwards.
  void stop();

  // False when the message is dropped (too large, queue full, stopped): counted.
  // Throws std::system_error for text that is not UTF-8.
  bool publish(std::string_view channel, const Message& message);
  void subscribe(std::string_view channel, Handler handler, BridgeScope scope);
  // Called on every change of state() (both links up, or not).
  void on_state(std::function<void(BridgeLinkState)> handler) {
    state_handlers_.push_back(std::move(handler));
  }

  BridgeCounters counters() const;
  BridgeLinkState state() const noexcept;
  std::uint64_t host() const noexcept { return config_.host; }
  const Config& config() const noexcept { return config_; }

 private:
  class Link;
  friend class Link;
  struct Subscription {
    Handler handler;
    BridgeScope scope;
  };

  void link_changed();
  void deliver(std::string_view redis_channel, std::string_view payload);
  void reject(BridgeRejection kind, std::string_view detail);
  std::string where() const;

  boost::asio::io_context& io_;
  Config config_;
  std::unique_ptr<Link> publisher_;
  std::unique_ptr<Link> subscriber_;
  std::map<std::string, std::vector<Subscription>, std::less<>> subscriptions_;  // by Redis channel
  std::vector<std::function<void(BridgeLinkState)>> state_handlers_;
  BridgeLinkState last_state_ = BridgeLinkState::connecting;
  bool was_up_ = false;
  bool stopped_ = false;

  // The queue of the publishing link: envelopes not yet handed to the socket, in
  // batches of at most max_message bytes per Redis channel (one PUBLISH each).
  struct Batch {
    std::string envelopes;
    std::uint64_t messages = 0;
  };
  std::map<std::string, std::vector<Batch>, std::less<>> batches_;
  std::size_t queued_bytes_ = 0;

  BridgeCounters counters_;
  std::array<bool, 5> rejection_logged_{};
};

}  // namespace multinode::detail

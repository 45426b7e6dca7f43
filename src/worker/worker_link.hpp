// A worker's side of its control channel: reports ready, takes mesh streams and
// stop orders, and stops the worker when the master goes away. It also beats the
// worker's heartbeat from the event loop, for the master to see the loop is not stuck.
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/server.hpp>
#include <multinode/workers.hpp>

#include "common/heartbeat.hpp"
#include "common/peer_host.hpp"
#include "control/channel.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace multinode::detail {

class WorkerLink {
 public:
  // What the link needs from the worker it runs in (the worker's runtime, in
  // src/core/, which the link may not use directly).
  // PeerHost: add_peer takes a mesh stream the master passed.
  class Host : public virtual PeerHost {
   public:
    // This worker's server counters, sent when the master asks (stats_request).
    virtual ServerCounters server_counters() const noexcept = 0;
    // This worker's bridge figures, sent with them; none without Options::bridge.
    virtual std::optional<BridgeCounters> bridge_counters() const = 0;

   protected:
    ~Host() = default;
  };

  // heartbeat_fd: the master's heartbeat cell (-1: none), stamped every beat_interval.
  WorkerLink(Host& host, int control_fd, int heartbeat_fd = -1,
             std::chrono::milliseconds beat_interval = std::chrono::milliseconds{1000});
  void start();
  void send_ready();  // beats too: the master watches the heartbeat from ready on
  // Tells the master this worker stops on a signal it got itself (not on the master's order).
  void send_stopping(int signal_number);
  // Options::max_requests: reads the host's server_counters() on a timer (worker/recycle.hpp) and, once
  // it reaches limit, sends the master one `recycle` record. Serving on meanwhile
  // is the master's business: it stops this worker once a replacement is ready.
  void watch_requests(std::uint64_t limit);
  // Also leaves the heartbeat saying "stopping": the loop may end now without being hung.
  void close();

 private:
  void arm_beat();
  void arm_request_check(std::chrono::milliseconds wait);
  void check_requests();
  // Answers the master's stats_request of that serial: the bridge_stats records, then stats.
  void send_stats(std::uint32_t serial);

  Host& host_;
  ControlChannel channel_;
  HeartbeatCell heartbeat_;
  boost::asio::steady_timer beat_timer_;
  std::chrono::milliseconds beat_interval_;
  bool closed_ = false;
  // max_requests: the count to reach, how to read it, the last reading and when.
  boost::asio::steady_timer request_timer_;
  std::uint64_t request_limit_ = 0;
  std::uint64_t last_served_ = 0;
  std::chrono::steady_clock::time_point last_check_{};
  std::chrono::milliseconds last_wait_{0};
};

}  // namespace multinode::detail

// Cluster-wide messages: the types of Nodes::publish() and Nodes::subscribe(),
// which carry framed messages to every process of every host through a Redis
// server (Options::bridge). docs/bridge.md describes the design and the faults.
#pragma once

#include <multinode/node_id.hpp>

#include <cstdint>
#include <string_view>

namespace multinode {

// Where a cluster-wide message comes from: the host (one id per master and its
// workers, random at the master's start) and the process on it.
struct BridgeOrigin {
  std::uint64_t host = 0;
  NodeId node = 0;
};

// Which messages of a channel a subscription gets.
enum class BridgeScope {
  // Those of every process of every host (the subscribing process's own excepted).
  every_host,
  // Those of the other hosts only: for state this host already shares over its mesh.
  other_hosts,
};

// Why a payload read from Redis was dropped.
enum class BridgeRejection : std::uint8_t {
  none = 0,
  oversized,  // larger than Options::bridge_max_message
  foreign,    // not a multinode envelope (another program publishes on the channel)
  malformed,  // a multinode envelope whose frame does not parse
  reply,      // a Redis reply that does not parse, or is not what was asked for
};
constexpr std::string_view to_string(BridgeRejection rejection) noexcept {
  switch (rejection) {
    case BridgeRejection::none:
      return "none";
    case BridgeRejection::oversized:
      return "oversized";
    case BridgeRejection::foreign:
      return "foreign";
    case BridgeRejection::malformed:
      return "malformed";
    case BridgeRejection::reply:
      return "reply";
  }
  return "unknown";
}

// The state of this process's link to Redis.
enum class BridgeLinkState : std::uint8_t {
  off,         // no Options::bridge
  connecting,  // connecting, or waiting to reconnect
  up,          // connected and subscribed
};
constexpr std::string_view to_string(BridgeLinkState state) noexcept {
  switch (state) {
    case BridgeLinkState::off:
      return "off";
    case BridgeLinkState::connecting:
      return "connecting";
    case BridgeLinkState::up:
      return "up";
  }
  return "unknown";
}

// This process's figures (Nodes::bridge_counters()).
struct BridgeCounters {
  std::uint64_t published = 0;  // messages Redis acknowledged
  std::uint64_t received = 0;   // messages delivered to this process's subscriptions
  std::uint64_t dropped = 0;    // messages published here that were lost: queue full, link lost
  std::uint64_t rejected = 0;   // payloads and replies dropped as bad input (sum of the next four)
  std::uint64_t oversized = 0;
  std::uint64_t foreign = 0;
  std::uint64_t malformed = 0;
  std::uint64_t bad_replies = 0;
  std::uint64_t reconnects = 0;    // links established again after one was lost or refused
  std::uint64_t queued_bytes = 0;  // published, not yet written to Redis (at most bridge_max_queued)
  BridgeLinkState state = BridgeLinkState::off;
};

}  // namespace multinode

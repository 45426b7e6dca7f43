// What the master tells an operator about its processes (the control socket's
// `status` and `metrics`, GET /metrics): one snapshot, two forms. The keys and
// metric names are documented in docs/operations.md.
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/node_id.hpp>
#include <multinode/server.hpp>

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::detail {

struct WorkerStatus {
  NodeId id = 0;
  unsigned slot = 0;
  pid_t pid = 0;
  std::string_view state;  // "starting", "ready", "draining" or "stopping"
  double uptime_s = 0;
  unsigned restarts = 0;                          // of its slot, after deaths
  std::optional<std::uint64_t> rss_bytes;         // none once /proc cannot tell
  std::optional<std::uint64_t> heartbeat_age_ms;  // none without heartbeats, or once stopping
  std::optional<ServerCounters> counters;         // none until it answered once
  std::optional<BridgeCounters> bridge;           // its link to Redis: none without one, or until it answered
  std::optional<bool> master_role;                // `multinode run`: holds the mesh's master role
};

// A warm standby of `multinode run --standby` (not a worker: it fills no slot yet).
struct StandbyStatus {
  NodeId id = 0;
  pid_t pid = 0;
  std::string_view state;  // "starting" (not said it waits yet), "waiting" or "stopping"
  double uptime_s = 0;
  std::optional<std::uint64_t> rss_bytes;
};

struct MasterStatus {
  pid_t pid = 0;
  double uptime_s = 0;
  std::uint64_t generation = 0;            // reloads begun since the start
  std::optional<ServerCounters> counters;  // only when the master serves
};

struct StatusSnapshot {
  MasterStatus master;
  std::vector<WorkerStatus> workers;     // by slot, then id
  std::optional<BridgeCounters> bridge;  // the master process's link to Redis, with Options::bridge
  // With Options::standby (else absent from the JSON and the metrics): the standbys, by id.
  std::optional<std::vector<StandbyStatus>> standby;
};

// {"master": {...}, "workers": [{...}, ...]} and a newline.
std::string status_json(const StatusSnapshot& status);
// Prometheus text exposition format 0.0.4: HELP and TYPE lines, labels id and slot.
std::string status_prometheus(const StatusSnapshot& status);

}  // namespace multinode::detail

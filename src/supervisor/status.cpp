// The status snapshot as JSON and as Prometheus text (status.hpp). Every key and
// label value is the code's own (numbers, fixed words): nothing needs escaping.
#include "supervisor/status.hpp"

#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

namespace multinode::detail {
namespace {

std::string decimal3(double value) {
  char out[48];
  std::snprintf(out, sizeof out, "%.3f", value);
  return out;
}

template <typename T>
std::string json_or_null(const std::optional<T>& value) {
  return value ? std::to_string(*value) : "null";
}

std::string labels(NodeId id, unsigned slot) {
  return "{id=\"" + std::to_string(id) + "\",slot=\"" + std::to_string(slot) + "\"}";
}

class Exposition {
 public:
  // One metric family: HELP, TYPE, then its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    name_ = name;
  }
  void sample(std::string_view label_set, const std::string& value) {
    out_ += name_;
    out_ += label_set;
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_;
};

// The "bridge" object of the master and of each worker (docs/operations.md).
std::string bridge_json(const BridgeCounters& b) {
  return "{\"state\":\"" + std::string(to_string(b.state)) +
         "\",\"published\":" + std::to_string(b.published) + ",\"received\":" + std::to_string(b.received) +
         ",\"dropped\":" + std::to_string(b.dropped) + ",\"rejected\":" + std::to_string(b.rejected) +
         ",\"rejected_by_reason\":{\"oversized\":" + std::to_string(b.oversized) +
         ",\"foreign\":" + std::to_string(b.foreign) + ",\"malformed\":" + std::to_string(b.malformed) +
         ",\"reply\":" + std::to_string(b.bad_replies) + "},\"reconnects\":" + std::to_string(b.reconnects) +
         ",\"queued_bytes\":" + std::to_string(b.queued_bytes) + "}";
}

}  // namespace

std::string status_json(const StatusSnapshot& status) {
  const MasterStatus& m = status.master;
  std::string out = "{\"master\":{\"pid\":" + std::to_string(m.pid) +
                    ",\"uptime_s\":" + decimal3(m.uptime_s) +
                    ",\"generation\":" + std::to_string(m.generation);
  if (m.counters) {
    out += ",\"connections\":" + std::to_string(m.counters->connections_open) +
           ",\"requests\":" + std::to_string(m.counters->requests);
  }
  out += "},\"workers\":[";
  bool first = true;
  for (const WorkerStatus& w : status.workers) {
    if (!first) out += ',';
    first = false;
    const auto connections = w.counters ? std::optional(w.counters->connections_open) : std::nullopt;
    const auto requests = w.counters ? std::optional(w.counters->requests) : std::nullopt;
    out += "{\"id\":" + std::to_string(w.id) + ",\"slot\":" + std::to_string(w.slot) +
           ",\"pid\":" + std::to_string(w.pid) + ",\"state\":\"" + std::string(w.state) +
           "\",\"uptime_s\":" + decimal3(w.uptime_s) + ",\"restarts\":" + std::to_string(w.restarts) +
           ",\"rss_bytes\":" + json_or_null(w.rss_bytes) +
           ",\"heartbeat_age_ms\":" + json_or_null(w.heartbeat_age_ms) +
           ",\"connections\":" + json_or_null(connections) + ",\"requests\":" + json_or_null(requests);
    if (w.bridge) out += ",\"bridge\":" + bridge_json(*w.bridge);
    if (w.master_role) out += *w.master_role ? ",\"master_role\":true" : ",\"master_role\":false";
    out += "}";
  }
  out += "]";
  if (status.standby) {
    out += ",\"standby\":[";
    for (std::size_t i = 0; i < status.standby->size(); ++i) {
      const StandbyStatus& s = (*status.standby)[i];
      out += std::string(i == 0 ? "" : ",") + "{\"id\":" + std::to_string(s.id) +
             ",\"pid\":" + std::to_string(s.pid) + ",\"state\":\"" + std::string(s.state) +
             "\",\"uptime_s\":" + decimal3(s.uptime_s) + ",\"rss_bytes\":" + json_or_null(s.rss_bytes) + "}";
    }
    out += "]";
  }
  if (status.bridge) out += ",\"bridge\":" + bridge_json(*status.bridge);
  out += "}\n";
  return out;
}

std::string status_prometheus(const StatusSnapshot& status) {
  Exposition e;
  const MasterStatus& m = status.master;
  e.family("multinode_master_uptime_seconds", "gauge", "Seconds since the master started.");
  e.sample("", decimal3(m.uptime_s));
  e.family("multinode_generation", "gauge", "Reloads (rolling restarts) begun since the master started.");
  e.sample("", std::to_string(m.generation));

  static constexpr std::string_view states[] = {"starting", "ready", "draining", "stopping"};
  unsigned counts[std::size(states)] = {};
  for (const WorkerStatus& w : status.workers) {
    for (std::size_t i = 0; i < std::size(states); ++i) counts[i] += w.state == states[i] ? 1 : 0;
  }
  if (status.standby) {
    unsigned waiting = 0;
    for (const StandbyStatus& s : *status.standby) waiting += s.state == "waiting" ? 1 : 0;
    e.family("multinode_standby_waiting", "gauge",
             "Standby processes prepared and waiting to fill a slot (multinode run --standby).");
    e.sample("", std::to_string(waiting));
  }
  e.family("multinode_workers_ready", "gauge", "Worker processes ready and serving.");
  e.sample("", std::to_string(counts[1]));
  e.family("multinode_workers", "gauge", "Worker processes by state.");
  for (std::size_t i = 0; i < std::size(states); ++i) {
    e.sample("{state=\"" + std::string(states[i]) + "\"}", std::to_string(counts[i]));
  }

  using Field = std::function<std::optional<std::string>(const WorkerStatus&)>;
  const auto per_worker = [&](std::string_view name, std::string_view type, std::string_view help,
                              const Field& field) {
    e.family(name, type, help);
    for (const WorkerStatus& w : status.workers) {
      if (auto value = field(w)) e.sample(labels(w.id, w.slot), *value);
    }
  };
  per_worker("multinode_worker_uptime_seconds", "gauge", "Seconds since the worker was started.",
             [](const WorkerStatus& w) { return decimal3(w.uptime_s); });
  per_worker("multinode_worker_restarts_total", "counter",
             "Restarts of the worker's slot after a worker in it died (crash, kill, hang).",
             [](const WorkerStatus& w) { return std::to_string(w.restarts); });
  per_worker("multinode_worker_rss_bytes", "gauge", "Resident memory of the worker process.",
             [](const WorkerStatus& w) -> std::optional<std::string> {
               if (!w.rss_bytes) return std::nullopt;
               return std::to_string(*w.rss_bytes);
             });
  per_worker("multinode_worker_heartbeat_age_seconds", "gauge",
             "Seconds since the worker's event loop last beat (absent without heartbeats).",
             [](const WorkerStatus& w) -> std::optional<std::string> {
               if (!w.heartbeat_age_ms) return std::nullopt;
               return decimal3(static_cast<double>(*w.heartbeat_age_ms) / 1000);
             });

  const auto serving = [&](std::string_view name, std::string_view type, std::string_view help,
                           std::uint64_t ServerCounters::*member) {
    e.family(name, type, help);
    if (m.counters) e.sample(labels(0, 0), std::to_string((*m.counters).*member));
    for (const WorkerStatus& w : status.workers) {
      if (w.counters) e.sample(labels(w.id, w.slot), std::to_string((*w.counters).*member));
    }
  };
  serving("multinode_connections_open", "gauge",
          "Connections the process holds open now (id 0 is the master, when it serves).",
          &ServerCounters::connections_open);
  serving("multinode_requests_total", "counter",
          "Requests the process has taken (the TCP server: connections) since it started.",
          &ServerCounters::requests);

  // The bridge: the master's figures (id 0) and each worker's that sent them.
  std::vector<std::pair<std::string, const BridgeCounters*>> bridges;
  if (status.bridge) bridges.emplace_back(labels(0, 0), &*status.bridge);
  for (const WorkerStatus& w : status.workers) {
    if (w.bridge) bridges.emplace_back(labels(w.id, w.slot), &*w.bridge);
  }
  if (!bridges.empty()) {
    const auto bridge = [&](std::string_view name, std::string_view type, std::string_view help,
                            const std::function<std::uint64_t(const BridgeCounters&)>& field) {
      e.family(name, type, help);
      for (const auto& [label_set, b] : bridges) e.sample(label_set, std::to_string(field(*b)));
    };
    bridge("multinode_bridge_up", "gauge", "1 when the process's links to Redis are up (Options::bridge).",
           [](const BridgeCounters& b) -> std::uint64_t { return b.state == BridgeLinkState::up ? 1 : 0; });
    bridge("multinode_bridge_published_total", "counter", "Cluster-wide messages Redis acknowledged.",
           [](const BridgeCounters& b) { return b.published; });
    bridge("multinode_bridge_received_total", "counter", "Cluster-wide messages delivered from Redis.",
           [](const BridgeCounters& b) { return b.received; });
    bridge("multinode_bridge_dropped_total", "counter",
           "Messages published here and lost: queue full, too large, link lost before Redis acknowledged.",
           [](const BridgeCounters& b) { return b.dropped; });
    e.family("multinode_bridge_rejected_total", "counter",
             "Payloads and replies from Redis dropped as bad input.");
    for (const auto& [label_set, b] : bridges) {
      // label_set is {id="..",slot=".."}: the reason goes before its closing brace.
      const std::string open = label_set.substr(0, label_set.size() - 1);
      e.sample(open + ",reason=\"oversized\"}", std::to_string(b->oversized));
      e.sample(open + ",reason=\"foreign\"}", std::to_string(b->foreign));
      e.sample(open + ",reason=\"malformed\"}", std::to_string(b->malformed));
      e.sample(open + ",reason=\"reply\"}", std::to_string(b->bad_replies));
    }
    bridge("multinode_bridge_reconnects_total", "counter", "Links to Redis established again after a loss.",
           [](const BridgeCounters& b) { return b.reconnects; });
    bridge("multinode_bridge_queued_bytes", "gauge", "Published messages waiting for the link to Redis.",
           [](const BridgeCounters& b) { return b.queued_bytes; });
  }
  return e.take();
}

}  // namespace multinode::detail

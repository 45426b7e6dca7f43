// The status snapshot's two forms: the JSON keys of `status` and the Prometheus
// text of `metrics`, byte for byte where it matters (the integration test parses
// both with real parsers).
#include "supervisor/status.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace multinode::detail {
namespace {

StatusSnapshot example() {
  StatusSnapshot status;
  status.master = {100, 12.5, 2, ServerCounters{1, 40}};
  WorkerStatus ready;
  ready.id = 3;
  ready.slot = 1;
  ready.pid = 103;
  ready.state = "ready";
  ready.uptime_s = 4.25;
  ready.restarts = 1;
  ready.rss_bytes = 3145728;
  ready.heartbeat_age_ms = 250;
  ready.counters = ServerCounters{2, 17};
  WorkerStatus starting;
  starting.id = 4;
  starting.slot = 2;
  starting.pid = 104;
  starting.state = "starting";
  status.workers = {ready, starting};
  return status;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text)) {
    if (l == line) return true;
  }
  return false;
}

TEST(SupervisorStatus, JsonHasEveryKeyAndNullForWhatIsNotKnown) {
  EXPECT_EQ(
      status_json(example()),
      "{\"master\":{\"pid\":100,\"uptime_s\":12.500,\"generation\":2,\"connections\":1,\"requests\":40},"
      "\"workers\":[{\"id\":3,\"slot\":1,\"pid\":103,\"state\":\"ready\",\"uptime_s\":4.250,\"restarts\":1,"
      "\"rss_bytes\":3145728,\"heartbeat_age_ms\":250,\"connections\":2,\"requests\":17},"
      "{\"id\":4,\"slot\":2,\"pid\":104,\"state\":\"starting\",\"uptime_s\":0.000,\"restarts\":0,"
      "\"rss_bytes\":null,\"heartbeat_age_ms\":null,\"connections\":null,\"requests\":null}]}\n");
}

TEST(SupervisorStatus, WorkersOfMultinodeRunSayWhichHoldsTheMasterRole) {
  StatusSnapshot status = example();
  status.workers[0].master_role = false;
  status.workers[1].master_role = true;
  const std::string json = status_json(status);
  EXPECT_NE(json.find("\"requests\":17,\"master_role\":false}"), std::string::npos) << json;
  EXPECT_NE(json.find("\"requests\":null,\"master_role\":true}"), std::string::npos) << json;
}

TEST(SupervisorStatus, AMasterThatDoesNotServeHasNoCounters) {
  StatusSnapshot status = example();
  status.master.counters.reset();
  status.workers.clear();
  EXPECT_EQ(status_json(status),
            "{\"master\":{\"pid\":100,\"uptime_s\":12.500,\"generation\":2},\"workers\":[]}\n");
  const std::string text = status_prometheus(status);
  EXPECT_EQ(text.find("id=\"0\""), std::string::npos) << text;
  EXPECT_TRUE(has_line(text, "multinode_workers_ready 0"));
}

TEST(SupervisorStatus, PrometheusFamiliesHaveHelpAndTypeAndLabelsIdAndSlot) {
  const std::string text = status_prometheus(example());
  for (const char* line : {
           "# TYPE multinode_workers_ready gauge",
           "multinode_workers_ready 1",
           "multinode_workers{state=\"starting\"} 1",
           "# TYPE multinode_worker_restarts_total counter",
           "multinode_worker_restarts_total{id=\"3\",slot=\"1\"} 1",
           "multinode_worker_restarts_total{id=\"4\",slot=\"2\"} 0",
           "# TYPE multinode_worker_rss_bytes gauge",
           "multinode_worker_rss_bytes{id=\"3\",slot=\"1\"} 3145728",
           "# TYPE multinode_worker_heartbeat_age_seconds gauge",
           "multinode_worker_heartbeat_age_seconds{id=\"3\",slot=\"1\"} 0.250",
           "# TYPE multinode_connections_open gauge",
           "multinode_connections_open{id=\"0\",slot=\"0\"} 1",
           "multinode_connections_open{id=\"3\",slot=\"1\"} 2",
           "# TYPE multinode_requests_total counter",
           "multinode_requests_total{id=\"0\",slot=\"0\"} 40",
           "multinode_requests_total{id=\"3\",slot=\"1\"} 17",
           "multinode_generation 2",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
  // What is not known has no sample (not a made-up 0).
  EXPECT_EQ(text.find("multinode_worker_rss_bytes{id=\"4\""), std::string::npos);
  EXPECT_EQ(text.find("multinode_requests_total{id=\"4\""), std::string::npos);
  // Every family announced once, HELP right before TYPE; every sample line of a known family.
  std::string family;
  for (const auto& line : lines_of(text)) {
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(text.find("# HELP " + family + " "), text.rfind("# HELP " + family + " ")) << family;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      EXPECT_EQ(line.rfind("# TYPE " + family + " ", 0), 0u) << line;
    } else {
      EXPECT_EQ(line.rfind(family, 0), 0u) << line;
      const char after = line[family.size()];
      EXPECT_TRUE(after == ' ' || after == '{') << line;
    }
  }
  EXPECT_EQ(text.back(), '\n');
}

TEST(SupervisorStatus, EveryProcessWithABridgeHasItsFigures) {
  StatusSnapshot status = example();
  BridgeCounters master;
  master.state = BridgeLinkState::up;
  master.published = 15;
  status.bridge = master;
  BridgeCounters worker;
  worker.state = BridgeLinkState::connecting;
  worker.received = 9;
  worker.dropped = 1;
  worker.foreign = 2;
  worker.rejected = 2;
  worker.reconnects = 3;
  worker.queued_bytes = 64;
  status.workers[0].bridge = worker;  // id 3; id 4 has not answered: no figures
  const std::string json = status_json(status);
  EXPECT_NE(json.find("\"requests\":17,\"bridge\":{\"state\":\"connecting\",\"published\":0,\"received\":9,"
                      "\"dropped\":1,\"rejected\":2,\"rejected_by_reason\":{\"oversized\":0,\"foreign\":2,"
                      "\"malformed\":0,\"reply\":0},\"reconnects\":3,\"queued_bytes\":64}}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("],\"bridge\":{\"state\":\"up\",\"published\":15,"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"requests\":null,\"bridge\""), std::string::npos) << json;
  const std::string text = status_prometheus(status);
  for (const char* line : {
           "# TYPE multinode_bridge_up gauge",
           "multinode_bridge_up{id=\"0\",slot=\"0\"} 1",
           "multinode_bridge_up{id=\"3\",slot=\"1\"} 0",
           "multinode_bridge_published_total{id=\"0\",slot=\"0\"} 15",
           "multinode_bridge_published_total{id=\"3\",slot=\"1\"} 0",
           "multinode_bridge_received_total{id=\"3\",slot=\"1\"} 9",
           "multinode_bridge_dropped_total{id=\"3\",slot=\"1\"} 1",
           "multinode_bridge_rejected_total{id=\"3\",slot=\"1\",reason=\"foreign\"} 2",
           "multinode_bridge_rejected_total{id=\"0\",slot=\"0\",reason=\"reply\"} 0",
           "multinode_bridge_reconnects_total{id=\"3\",slot=\"1\"} 3",
           "multinode_bridge_queued_bytes{id=\"3\",slot=\"1\"} 64",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
  EXPECT_EQ(text.find("multinode_bridge_up{id=\"4\""), std::string::npos) << text;
  EXPECT_EQ(text.find("# TYPE multinode_bridge_up "), text.rfind("# TYPE multinode_bridge_up ")) << text;
  // A worker's figures alone (a master without a bridge does not happen, but the form holds).
  status.bridge.reset();
  EXPECT_TRUE(has_line(status_prometheus(status), "multinode_bridge_up{id=\"3\",slot=\"1\"} 0"));
}

}  // namespace
}  // namespace multinode::detail

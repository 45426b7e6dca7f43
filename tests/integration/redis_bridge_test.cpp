// Options::bridge against a real redis-server (Debian's): two "hosts" (two
// masters with their workers, tests/programs/bridge_node.cpp) bridged through one
// server on a free loopback port. docs/bridge.md describes what is checked here.
#include "process.hpp"

#include <multinode/control.hpp>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using multinode::test::ChildProcess;

namespace {

constexpr const char* redis_server = "/usr/bin/redis-server";

ChildProcess start_redis(std::uint16_t port) {
  auto redis = ChildProcess::start({redis_server, "--save", "", "--appendonly", "no", "--port",
                                    std::to_string(port), "--bind", "127.0.0.1"});
  const int fd = multinode::test::wait_for_connect(port, 10s);
  if (fd >= 0) ::close(fd);
  return redis;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "bridge_" + std::to_string(::getpid()) + "_" + name;
}

// The "recv" lines of one process (its node id) in a host's output.
std::vector<std::string> received_by(const ChildProcess& host, const std::string& node) {
  std::vector<std::string> lines;
  std::istringstream in(host.output());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("recv " + node + " ", 0) == 0) lines.push_back(line);
  }
  return lines;
}

bool wait_received(const ChildProcess& host, const std::string& node, std::size_t count,
                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (received_by(host, node).size() >= count) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::string host_id(const ChildProcess& host) {
  std::istringstream in(host.output());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("host ", 0) == 0) return line.substr(5);
  }
  return "";
}

struct Hosts {
  std::uint16_t port = multinode::test::free_port();
  std::string url = "redis://127.0.0.1:" + std::to_string(port);
  std::string prefix = "test" + std::to_string(::getpid()) + ":";
  std::string trigger = temp_path("trigger");
  std::string control = temp_path("control.sock");
  ~Hosts() {
    ::unlink(trigger.c_str());
    ::unlink(control.c_str());
  }
  ChildProcess start_publisher(unsigned count, unsigned interval_us) const {
    return ChildProcess::start({multinode::test::test_program_path("bridge_node"), "--bridge", url,
                                "--prefix", prefix, "--control", control, "--publish-on", trigger, "--count",
                                std::to_string(count), "--interval-us", std::to_string(interval_us)});
  }
  ChildProcess start_receiver(std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv = {multinode::test::test_program_path("bridge_node"), "--bridge", url,
                                     "--prefix", prefix};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return ChildProcess::start(argv);
  }
  void publish() const { std::ofstream(trigger) << "go\n"; }
};

// A graceful stop: SIGTERM, and exit status 0 (under the sanitizers: no report either).
void stop_host(ChildProcess& host) {
  host.signal(SIGTERM);
  const auto status = host.wait(10s);
  ASSERT_TRUE(status) << "did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << host.error_output();
  EXPECT_EQ(host.error_output().find("Sanitizer"), std::string::npos) << host.error_output();
}

void expect_up(const ChildProcess& host) {
  EXPECT_TRUE(host.wait_for_output("up 0", 10s)) << host.error_output();
  EXPECT_TRUE(host.wait_for_output("up 1", 10s)) << host.error_output();
}

// The body of GET /metrics on the metrics endpoint at port.
std::string scrape_metrics(std::uint16_t port) {
  const int fd = multinode::test::connect_tcp(port, 5s);
  if (fd < 0) return "(no connection to the metrics endpoint)";
  multinode::test::write_all(fd, "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
  const std::string response = multinode::test::read_until_closed(fd, 5s);
  ::close(fd);
  const auto end = response.find("\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  return end == std::string::npos ? response : response.substr(end + 4);
}

// The "bridge" object of the worker `id` in a status reply (null when it has none).
boost::json::value worker_bridge(const std::string& status, std::int64_t id) {
  boost::system::error_code error;
  const auto parsed = boost::json::parse(status, error);
  if (error || !parsed.is_object()) {
    ADD_FAILURE() << "status is not JSON: " << status;
    return nullptr;
  }
  for (const auto& w : parsed.at("workers").as_array()) {
    const auto& worker = w.as_object();
    if (worker.at("id").to_number<std::int64_t>() != id) continue;
    const auto* bridge = worker.if_contains("bridge");
    return bridge != nullptr ? *bridge : boost::json::value(nullptr);
  }
  return nullptr;
}

}  // namespace

TEST(Bridge, DeliversEveryKindToEveryProcessOfEveryHostOnce) {
  Hosts hosts;
  auto redis = start_redis(hosts.port);
  auto a = hosts.start_publisher(5, 0);
  auto b = hosts.start_receiver();
  expect_up(a);
  expect_up(b);
  hosts.publish();
  ASSERT_TRUE(a.wait_for_output("done 15 0", 10s)) << a.output() << a.error_output();
  const std::string from = host_id(a);
  ASSERT_FALSE(from.empty());
  // Host B's two processes and host A's worker get all 15, each once; A's master, the publisher, none.
  for (const auto& [host, node] :
       std::vector<std::pair<const ChildProcess*, std::string>>{{&b, "0"}, {&b, "1"}, {&a, "1"}}) {
    ASSERT_TRUE(wait_received(*host, node, 15, 10s)) << host->output();
    std::this_thread::sleep_for(100ms);  // a duplicate would come right after
    const auto lines = received_by(*host, node);
    EXPECT_EQ(lines.size(), 15u);
    std::set<std::string> unique(lines.begin(), lines.end());
    EXPECT_EQ(unique.size(), 15u);
    for (int i = 0; i < 5; ++i) {
      const std::string prefix = "recv " + node + " " + from + " 0 ";
      EXPECT_TRUE(unique.count(prefix + "text t" + std::to_string(i))) << i;
      EXPECT_TRUE(unique.count(prefix + "binary b" + std::to_string(i))) << i;
      EXPECT_TRUE(unique.count(prefix + "json {\"i\":" + std::to_string(i) + "}")) << i;
    }
  }
  EXPECT_TRUE(received_by(a, "0").empty()) << "the publishing process got its own messages back";
  // The master's figures in status.
  const std::string status = multinode::control_command(hosts.control, "status");
  EXPECT_NE(status.find("\"bridge\":{\"state\":\"up\",\"published\":15,"), std::string::npos) << status;
  const std::string metrics = multinode::control_command(hosts.control, "metrics");
  EXPECT_NE(metrics.find("multinode_bridge_published_total{id=\"0\",slot=\"0\"} 15"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("multinode_bridge_up{id=\"0\",slot=\"0\"} 1"), std::string::npos);
  stop_host(a);
  stop_host(b);
  redis.kill_all();
}

TEST(Bridge, GarbageOnTheChannelIsCountedAndDropped) {
  Hosts hosts;
  auto redis = start_redis(hosts.port);
  auto a = hosts.start_publisher(1, 0);
  auto b = hosts.start_receiver();
  expect_up(a);
  expect_up(b);
  const std::string channel = hosts.prefix + "t";
  const std::string cli = "/usr/bin/redis-cli -p " + std::to_string(hosts.port) + " PUBLISH " + channel;
  ASSERT_EQ(std::system((cli + " 'not ours' > /dev/null").c_str()), 0);
  ASSERT_EQ(std::system((cli + " 'not ours either' > /dev/null").c_str()), 0);
  // The magic, then a frame header whose length says more than follows.
  ASSERT_EQ(
      std::system(
          ("printf 'MNB1AAAAAAAABBBB\\001\\000\\000\\000\\377\\000\\000\\000x' | /usr/bin/redis-cli -x -p " +
           std::to_string(hosts.port) + " PUBLISH " + channel + " > /dev/null")
              .c_str()),
      0);
  // Over bridge_max_message (1 MiB by default): dropped, the link stays.
  ASSERT_EQ(std::system(("head -c 1048700 /dev/zero | tr '\\0' a | /usr/bin/redis-cli -x -p " +
                         std::to_string(hosts.port) + " PUBLISH " + channel + " > /dev/null")
                            .c_str()),
            0);
  hosts.publish();  // and a good message after them
  ASSERT_TRUE(wait_received(b, "0", 3, 10s)) << b.output() << b.error_output();
  ASSERT_TRUE(wait_received(b, "1", 3, 10s)) << b.output() << b.error_output();
  EXPECT_TRUE(b.wait_for_log_count("dropped a foreign payload", 2, 5s))
      << b.error_output();  // once per process
  EXPECT_FALSE(b.wait_for_log_count("dropped a foreign payload", 3, 200ms))
      << "logged more than once per kind";
  EXPECT_TRUE(b.wait_for_log_count("dropped a malformed payload", 2, 5s)) << b.error_output();
  EXPECT_TRUE(b.wait_for_log_count("dropped an oversized payload", 2, 5s)) << b.error_output();
  ASSERT_TRUE(a.wait_for_output("done 3 0", 10s));
  const std::string status = multinode::control_command(hosts.control, "status");
  EXPECT_NE(status.find("\"rejected_by_reason\":{\"oversized\":1,\"foreign\":2,\"malformed\":1,\"reply\":0},"
                        "\"reconnects\":0,"),
            std::string::npos)
      << status;
  stop_host(a);
  stop_host(b);
  redis.kill_all();
}

TEST(Bridge, RedisDownAtStartKilledAndRestartedTheBridgeComesBack) {
  Hosts hosts;
  // Redis is not there yet: both hosts start, serve, and keep trying.
  auto a = hosts.start_publisher(600, 5000);
  auto b = hosts.start_receiver();
  EXPECT_TRUE(b.wait_for_output("is down", 10s, true)) << b.error_output();
  auto redis = std::make_unique<ChildProcess>(start_redis(hosts.port));
  expect_up(a);
  expect_up(b);
  hosts.publish();  // 1800 messages over about 3 s
  ASSERT_TRUE(wait_received(b, "0", 30, 10s)) << b.output();
  redis->kill_all();  // SIGKILL in the middle of the stream
  redis.reset();
  std::this_thread::sleep_for(500ms);
  redis = std::make_unique<ChildProcess>(start_redis(hosts.port));
  ASSERT_TRUE(a.wait_for_output("done ", 20s)) << a.output() << a.error_output();
  EXPECT_TRUE(b.wait_for_log_count("back on Redis", 2, 10s)) << b.error_output();
  EXPECT_TRUE(a.wait_for_log_count("back on Redis", 2, 10s)) << a.error_output();
  std::istringstream done(a.output().substr(a.output().find("done ") + 5));
  std::uint64_t published = 0, dropped = 0, reconnects = 0;
  done >> published >> dropped >> reconnects;
  EXPECT_EQ(published + dropped, 1800u);
  EXPECT_GE(reconnects, 1u);
  EXPECT_GT(published, 0u);
  std::this_thread::sleep_for(300ms);
  for (const std::string node : {"0", "1"}) {
    const auto lines = received_by(b, node);
    // At most once: never twice, and no more than was sent. (A message Redis took
    // but did not acknowledge before it died counts as dropped, yet may have been
    // delivered: so the bound is published + dropped, not published.)
    EXPECT_LE(lines.size(), published + dropped) << node;
    EXPECT_GT(lines.size(), 30u) << node;
    EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()).size(), lines.size()) << node;
    // The last round, published after the restart, arrived.
    EXPECT_NE(b.output().find("recv " + node + " " + host_id(a) + " 0 json {\"i\":599}"), std::string::npos)
        << node;
  }
  stop_host(a);
  stop_host(b);
  redis->kill_all();
}

// Every worker's own figures travel to its master (bridge_stats records) and show
// in status and in metrics, labelled with its id and slot as the other per-worker figures.
TEST(Bridge, EveryWorkersFiguresAppearInStatusAndMetrics) {
  Hosts hosts;
  const std::string b_control = temp_path("b_control.sock");
  const std::uint16_t b_metrics = multinode::test::free_port();
  auto redis = start_redis(hosts.port);
  auto a = hosts.start_publisher(5, 0);
  auto b = hosts.start_receiver(
      {"--nodes", "3", "--control", b_control, "--metrics", "127.0.0.1:" + std::to_string(b_metrics)});
  expect_up(a);
  expect_up(b);
  EXPECT_TRUE(b.wait_for_output("up 2", 10s)) << b.error_output();
  hosts.publish();
  ASSERT_TRUE(a.wait_for_output("done 15 0", 10s)) << a.output() << a.error_output();
  for (const auto& [host, node] :
       std::vector<std::pair<const ChildProcess*, std::string>>{{&b, "0"}, {&b, "1"}, {&b, "2"}, {&a, "1"}}) {
    ASSERT_TRUE(wait_received(*host, node, 15, 10s)) << host->output();
  }

  // Host A: its worker (id 1) received the 15 and published nothing.
  const std::string a_status = multinode::control_command(hosts.control, "status");
  const auto a_worker = worker_bridge(a_status, 1);
  ASSERT_TRUE(a_worker.is_object()) << a_status;
  EXPECT_EQ(a_worker.at("state"), "up") << a_status;
  EXPECT_EQ(a_worker.at("published").to_number<std::uint64_t>(), 0u) << a_status;
  EXPECT_EQ(a_worker.at("received").to_number<std::uint64_t>(), 15u) << a_status;
  EXPECT_EQ(a_worker.at("dropped").to_number<std::uint64_t>(), 0u) << a_status;
  EXPECT_EQ(a_worker.at("reconnects").to_number<std::uint64_t>(), 0u) << a_status;
  EXPECT_EQ(a_worker.at("rejected_by_reason").at("foreign").to_number<std::uint64_t>(), 0u) << a_status;
  // The master's own figures stay where they were.
  EXPECT_NE(a_status.find("],\"bridge\":{\"state\":\"up\",\"published\":15,"), std::string::npos) << a_status;

  // Host B: garbage on the channel, counted by every process; each worker's figures in status and metrics.
  const std::string channel = hosts.prefix + "t";
  const std::string redis_cli = "redis-cli -p " + std::to_string(hosts.port) + " publish '" + channel +
                                "' 'not a multinode envelope' >/dev/null";
  ASSERT_EQ(std::system(redis_cli.c_str()), 0);
  std::string b_status;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    b_status = multinode::control_command(b_control, "status");
    const auto w1 = worker_bridge(b_status, 1), w2 = worker_bridge(b_status, 2);
    if (w1.is_object() && w2.is_object() && w1.at("rejected").to_number<std::uint64_t>() == 1 &&
        w2.at("rejected").to_number<std::uint64_t>() == 1) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  for (const std::int64_t id : {1, 2}) {
    const auto w = worker_bridge(b_status, id);
    ASSERT_TRUE(w.is_object()) << b_status;
    EXPECT_EQ(w.at("state"), "up") << b_status;
    EXPECT_EQ(w.at("received").to_number<std::uint64_t>(), 15u) << b_status;
    EXPECT_EQ(w.at("rejected").to_number<std::uint64_t>(), 1u) << b_status;
    EXPECT_EQ(w.at("rejected_by_reason").at("foreign").to_number<std::uint64_t>(), 1u) << b_status;
  }
  const std::string metrics = scrape_metrics(b_metrics);
  for (const std::string line : {
           "multinode_bridge_up{id=\"0\",slot=\"0\"} 1",
           "multinode_bridge_received_total{id=\"0\",slot=\"0\"} 15",
           "multinode_bridge_up{id=\"1\",slot=\"1\"} 1",
           "multinode_bridge_up{id=\"2\",slot=\"2\"} 1",
           "multinode_bridge_published_total{id=\"1\",slot=\"1\"} 0",
           "multinode_bridge_received_total{id=\"1\",slot=\"1\"} 15",
           "multinode_bridge_received_total{id=\"2\",slot=\"2\"} 15",
           "multinode_bridge_dropped_total{id=\"2\",slot=\"2\"} 0",
           "multinode_bridge_rejected_total{id=\"2\",slot=\"2\",reason=\"foreign\"} 1",
           "multinode_bridge_reconnects_total{id=\"1\",slot=\"1\"} 0",
           "multinode_bridge_queued_bytes{id=\"2\",slot=\"2\"} 0",
       }) {
    EXPECT_NE(metrics.find("\n" + line + "\n"), std::string::npos) << line << "\n" << metrics;
  }
  // The same over the control socket.
  const std::string over_socket = multinode::control_command(b_control, "metrics");
  EXPECT_NE(over_socket.find("\nmultinode_bridge_received_total{id=\"2\",slot=\"2\"} 15\n"),
            std::string::npos)
      << over_socket;
  stop_host(a);
  stop_host(b);
  ::unlink(b_control.c_str());
  redis.kill_all();
}

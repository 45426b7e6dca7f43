// Even balancing (docs/architecture.md, "Even balancing"), on the hello example:
// 64 connections opened at once, the way wrk -c64 opens them, are shared by the 4
// serving processes within +-25 % of the mean (12 to 20 each), round after round;
// a stopped process holding the fewest does not keep the others from serving; the
// same with one SO_REUSEPORT socket per slot.
#include "process.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

const std::regex greeting("Hello from node [0-9]+ \\(pid ([0-9]+)\\)\n");

ChildProcess start_hello(std::uint16_t port, std::vector<std::string> extra) {
  std::vector<std::string> argv{example_path("hello"), "--port", std::to_string(port), "--host", "127.0.0.1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::start(argv);
}

// Every connection is established (queued by the kernel) before the first request
// is sent, then each asks which process holds it. Returns the count per pid; a
// connection that got no greeting counts under pid 0.
std::map<pid_t, int> shares(std::uint16_t port, int connections) {
  std::vector<int> fds;
  for (int i = 0; i < connections; ++i) fds.push_back(connect_tcp(port));
  std::map<pid_t, int> count;
  for (const int fd : fds) {
    pid_t pid = 0;
    if (fd >= 0 && write_all(fd, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")) {
      const std::string response = read_until(fd, ")\n", 5s);
      std::smatch match;
      const auto body = response.find("Hello from");
      const std::string text = body == std::string::npos ? "" : response.substr(body);
      if (std::regex_match(text, match, greeting)) pid = std::stoi(match[1]);
    }
    ++count[pid];
  }
  for (const int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  return count;
}

// Connections on local port `port` not yet closed by the server (any state but
// LISTEN), from /proc/net/tcp.
int server_side_connections(std::uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  int open = 0;
  char wanted[8];
  std::snprintf(wanted, sizeof wanted, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local.size() >= 5 && local.compare(local.size() - 5, 5, wanted) == 0 && state != "0A") ++open;
  }
  return open;
}

// A process counts the connections it holds until it has seen them close: the
// next round starts once every process has (bounded; a busy machine is slow).
void wait_for_closes(std::uint16_t port) {
  for (int i = 0; i < 250 && server_side_connections(port) > 0; ++i) std::this_thread::sleep_for(20ms);
}

std::string describe(const std::map<pid_t, int>& count) {
  std::string text;
  for (const auto& [pid, n] : count) text += std::to_string(pid) + ": " + std::to_string(n) + "  ";
  return text;
}

void expect_even(std::uint16_t port, std::size_t processes, int rounds) {
  for (int round = 0; round < rounds; ++round) {
    wait_for_closes(port);
    const auto count = shares(port, 64);
    EXPECT_EQ(count.count(0), 0u) << "connections without an answer, round " << round << ": "
                                  << describe(count);
    EXPECT_EQ(count.size(), processes) << "round " << round << ": " << describe(count);
    const int mean = 64 / static_cast<int>(processes);
    for (const auto& [pid, n] : count) {
      EXPECT_GE(n, mean - mean / 4) << "round " << round << ": " << describe(count);
      EXPECT_LE(n, mean + mean / 4) << "round " << round << ": " << describe(count);
    }
  }
}

TEST(Balance, FourProcessesShareSixtyFourConnectionsEvenly) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "4"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();
  // Rounds: the connections of one round close before the next opens, so each
  // process's published load must come down as its connections close.
  expect_even(port, 4, 5);
}

TEST(Balance, FourWorkersShareEvenlyWhenTheMasterOnlySupervises) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "4", "--no-master-listen"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 4, 10s)) << hello.error_output();
  expect_even(port, 4, 3);
}

TEST(Balance, AStoppedProcessWithTheFewestDoesNotStopTheOthers) {
  const std::uint16_t port = free_port();
  // Heartbeats off: the stopped worker stays (and keeps its load of 0 in the table).
  auto hello = start_hello(port, {"--nodes", "3", "--heartbeat-timeout", "0"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 2, 10s)) << hello.error_output();
  const std::vector<pid_t> workers = child_pids(hello.pid());
  ASSERT_EQ(workers.size(), 2u);
  ::kill(workers.front(), SIGSTOP);
  // Every connection is answered (after the fallback wait), by the two others.
  const auto count = shares(port, 64);
  ::kill(workers.front(), SIGCONT);
  EXPECT_EQ(count.count(0), 0u) << describe(count);
  EXPECT_EQ(count.count(workers.front()), 0u) << describe(count);
  int served = 0;
  for (const auto& [pid, n] : count) served += pid != 0 ? n : 0;
  EXPECT_EQ(served, 64) << describe(count);
}

// With Balancing::reuseport the kernel hashes each connection to one slot's socket,
// but every process holds every slot's socket and takes from any of them by the
// same rule: the shares are those of the shared socket, whichever queue the kernel picked.
TEST(Balance, ReuseportSharesSixtyFourConnectionsEvenly) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "4", "--balancing", "reuseport"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();
  expect_even(port, 4, 5);
}

TEST(Balance, ReuseportWorkersShareEvenlyWhenTheMasterOnlySupervises) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "4", "--balancing", "reuseport", "--no-master-listen"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 4, 10s)) << hello.error_output();
  expect_even(port, 4, 3);
}

// A worker killed with -9: the connections the kernel queues on its slot's socket
// meanwhile are served by the others (they hold that socket too), and the replacement
// shares evenly again.
TEST(Balance, ReuseportServesAKilledWorkersQueueAndStaysEven) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "4", "--balancing", "reuseport"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();
  const std::vector<pid_t> workers = child_pids(hello.pid());
  ASSERT_EQ(workers.size(), 3u);
  ::kill(workers.front(), SIGKILL);
  const auto count = shares(port, 64);
  EXPECT_EQ(count.count(0), 0u) << describe(count);
  EXPECT_EQ(count.count(workers.front()), 0u) << describe(count);
  int served = 0;
  for (const auto& [pid, n] : count) served += pid != 0 ? n : 0;
  EXPECT_EQ(served, 64) << describe(count);
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 4, 10s)) << hello.error_output();
  expect_even(port, 4, 2);
}

// A slot added by SIGTTIN after the others started: their processes do not hold its
// socket, so its process accepts unbalanced and every connection is still served.
// A rolling restart gives every process every slot's socket: even again.
TEST(Balance, ReuseportSlotAddedLaterIsServedAndEvenAfterARollingRestart) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--nodes", "3", "--balancing", "reuseport", "--no-master-listen"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();
  hello.signal(SIGTTIN);
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 4, 10s)) << hello.error_output();
  EXPECT_NE(hello.error_output().find("accepts unbalanced"), std::string::npos) << hello.error_output();
  const auto count = shares(port, 64);
  EXPECT_EQ(count.count(0), 0u) << describe(count);
  int served = 0;
  for (const auto& [pid, n] : count) served += pid != 0 ? n : 0;
  EXPECT_EQ(served, 64) << describe(count);

  wait_for_closes(port);
  hello.signal(SIGHUP);
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 8, 20s)) << hello.error_output();
  for (int i = 0; i < 250 && child_pids(hello.pid()).size() != 4; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(child_pids(hello.pid()).size(), 4u) << hello.error_output();
  expect_even(port, 4, 3);
}

}  // namespace
}  // namespace multinode::test

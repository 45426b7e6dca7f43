// Worker recycling (max_requests, max_rss): a worker past its limit is replaced
// through the rolling path, so a steady client loses no request; the log says
// which worker, why and that it is recycled.
#include "process.hpp"

#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <strings.h>
#include <sys/wait.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

using http::test::Client;
using http::test::get;
using clock = std::chrono::steady_clock;

// Counts of what a steady client saw: every request answered 200, or a failure.
struct Load {
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::mutex mutex;
  std::map<std::string, int> bodies;  // answers of each process (the body names its pid)
};

// One keep-alive client: requests one after the other on a connection, a new
// connection when the server answered with Connection: close (a stopping worker
// does so for the request it takes during its drain), until `done`. With
// `one_per_connection` every request asks for Connection: close.
void steady_client(std::uint16_t port, std::string_view target, const std::atomic<bool>& done, Load& load,
                   bool one_per_connection = false) {
  const std::string request = get(target, one_per_connection ? "Connection: close\r\n" : "");
  std::unique_ptr<Client> client;
  for (int i = 0; i < 100000 && !done; ++i) {
    if (!client) client = std::make_unique<Client>(port);
    const auto response = client->send(request) ? client->read_response() : std::nullopt;
    if (!response || response->status != 200) {
      ++load.failed;
      client.reset();
      continue;
    }
    ++load.ok;
    {
      const std::lock_guard lock(load.mutex);
      ++load.bodies[response->body];
    }
    if (strcasecmp(response->header("Connection").c_str(), "close") == 0) client.reset();
  }
}

int count_of(const std::string& text, const std::regex& pattern) {
  return static_cast<int>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), pattern), std::sregex_iterator()));
}

// Whether the master's children come down to `count` (old workers draining leave) within 5 s.
bool settles_to(pid_t master, std::size_t count) {
  for (int i = 0; i < 200; ++i) {
    if (child_pids(master).size() == count) return true;
    std::this_thread::sleep_for(25ms);
  }
  return false;
}

void stop_cleanly(ChildProcess& server) {
  server.signal(SIGTERM);
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value()) << server.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
}

ChildProcess start_hello(std::uint16_t port, const std::vector<std::string>& extra) {
  std::vector<std::string> argv{
      example_path("hello"), "--port", std::to_string(port), "--nodes", "3", "--host", "127.0.0.1",
      "--no-master-listen"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::start(argv);
}

const std::regex served_line(
    "worker [0-9]+ \\(slot [0-9]+, pid [0-9]+\\) served ([0-9]+) requests "
    "\\(max_requests 50\\): recycling it");
const std::regex recycled_line("worker [0-9]+ \\(slot [0-9]+\\) recycled: worker [0-9]+ serves in its place");

TEST(Recycle, MaxRequestsRecyclesWorkersUnderASteadyClientWithoutAFailedRequest) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--max-requests", "50"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();

  Load load;
  std::atomic<bool> done{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back([&] { steady_client(port, "/", done, load); });
  // 3 workers of 50 requests each: 6 recycles are done within some 600 requests.
  const bool recycled = hello.wait_for_log_count(" recycled: ", 6, 30s);
  done = true;
  for (auto& client : clients) client.join();

  const std::string log = hello.error_output();
  EXPECT_TRUE(recycled) << log;
  EXPECT_EQ(load.failed.load(), 0) << "requests failed while workers recycled\n" << log;
  EXPECT_GE(count_of(log, recycled_line), 6) << log;
  // A worker asks once it has served its 50 (the count is read on a timer, so a few more).
  for (auto it = std::sregex_iterator(log.begin(), log.end(), served_line); it != std::sregex_iterator();
       ++it)
    EXPECT_GE(std::stoi((*it)[1]), 50) << (*it)[0];
  EXPECT_GT(load.bodies.size(), 3u) << "replacements answer too";
  EXPECT_TRUE(settles_to(hello.pid(), 3)) << log;           // the old workers finish and leave
  EXPECT_EQ(log.find("killed"), std::string::npos) << log;  // every old worker stopped by itself
  stop_cleanly(hello);
}

TEST(Recycle, ARollingRestartAmidRecyclesLosesNothingAndEndsWithEverySlotFilled) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, {"--max-requests", "50", "--max-requests-jitter", "20"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 10s)) << hello.error_output();

  Load load;
  std::atomic<bool> done{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back([&] { steady_client(port, "/", done, load); });
  ASSERT_TRUE(hello.wait_for_log_count("recycling it", 1, 30s)) << hello.error_output();
  hello.signal(SIGHUP);
  const bool more = hello.wait_for_log_count(" recycled: ", 4, 30s);
  done = true;
  for (auto& client : clients) client.join();

  const std::string log = hello.error_output();
  EXPECT_TRUE(more) << log;
  EXPECT_EQ(load.failed.load(), 0) << "requests failed while workers recycled and restarted\n" << log;
  EXPECT_TRUE(settles_to(hello.pid(), 3)) << log;  // once the load is gone: one worker per slot
  stop_cleanly(hello);
}

TEST(Recycle, AServingMasterIsNotRecycled) {
  // max_requests applies to workers: with master_listen the master serves on past it.
  const std::uint16_t port = free_port();
  auto hello = ChildProcess::start({example_path("hello"), "--port", std::to_string(port), "--nodes", "2",
                                    "--host", "127.0.0.1", "--max-requests", "20"});
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 1, 10s)) << hello.error_output();
  Load load;
  std::atomic<bool> done{false};
  // A connection per request: the master takes its share of them, and the worker its.
  std::thread client([&] { steady_client(port, "/", done, load, true); });
  const std::string master_answer = "(pid " + std::to_string(hello.pid()) + ")";
  auto master_served = [&] {
    const std::lock_guard lock(load.mutex);
    int count = 0;
    for (const auto& [body, answers] : load.bodies)
      count += body.find(master_answer) != std::string::npos ? answers : 0;
    return count;
  };
  const bool recycled = hello.wait_for_log_count(" recycled: ", 2, 30s);
  for (int i = 0; i < 3000 && master_served() <= 60; ++i) std::this_thread::sleep_for(10ms);
  done = true;
  client.join();
  const std::string log = hello.error_output();
  EXPECT_TRUE(recycled) << log;
  EXPECT_EQ(load.failed.load(), 0) << log;
  EXPECT_GT(master_served(), 60) << "the master serves on, three times past max_requests";
  EXPECT_EQ(log.find("master pid " + std::to_string(hello.pid()) + "] stopping"), std::string::npos) << log;
  EXPECT_EQ(count_of(log, std::regex("worker 0 ")), 0) << log;
  EXPECT_TRUE(process_alive(hello.pid()));
  stop_cleanly(hello);
}

ChildProcess start_recycle_server(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{test_program_path("recycle_server"), "--nodes", "2", "--no-master-listen"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::start(argv);
}

// The pid a process answers with ("pid 123\n").
pid_t answering_pid(std::uint16_t port, std::string_view target) {
  Client client(port);
  if (!client.send(get(target, "Connection: close\r\n"))) return 0;
  const auto response = client.read_response(false, 10s);
  if (!response || response->status != 200 || !response->body.starts_with("pid ")) return 0;
  return static_cast<pid_t>(std::stoi(response->body.substr(4)));
}

TEST(Recycle, MaxRssRecyclesAWorkerWhoseMemoryGrowsAboveIt) {
  auto server = start_recycle_server({"--max-rss", "48"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  std::this_thread::sleep_for(1500ms);  // checked at least once: a worker at rest is far below 48 MiB
  EXPECT_EQ(server.error_output().find("recycling"), std::string::npos) << server.error_output();

  Load load;
  std::atomic<bool> done{false};
  std::thread client([&] { steady_client(port, "/", done, load); });
  const pid_t grown = answering_pid(port, "/grow?mb=64");
  ASSERT_NE(grown, 0) << server.error_output();
  // Read within a second, then replaced: gone once its replacement is ready.
  EXPECT_TRUE(wait_process_gone(grown, 10s)) << server.error_output();
  ASSERT_TRUE(server.wait_for_log_count("is ready", 3, 5s)) << server.error_output();
  std::this_thread::sleep_for(200ms);
  done = true;
  client.join();

  const std::string log = server.error_output();
  const std::regex line("worker [0-9]+ \\(slot [0-9]+, pid " + std::to_string(grown) +
                        "\\) has ([0-9]+)\\.[0-9] MiB resident, above max_rss 48 MiB: recycling it");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(log, match, line)) << log;
  EXPECT_GE(std::stoi(match[1]), 48) << match[0];
  EXPECT_EQ(count_of(log, std::regex("recycling it")), 1) << "only the grown worker\n" << log;
  EXPECT_EQ(load.failed.load(), 0) << log;
  EXPECT_TRUE(settles_to(server.pid(), 2)) << log;
  stop_cleanly(server);
}

TEST(Recycle, AReplacementThatFailsLeavesTheOldWorkerServingAndIsRetriedWithBackoff) {
  // Workers 1 and 2 serve; every later worker exits before ready. A recycle's
  // replacement then fails: the old worker serves on, the recycle is tried again
  // after restart_delay (doubling), and given up after crash_loop_limit tries.
  auto server = start_recycle_server(
      {"--max-rss", "48", "--worker-exit-above", "2", "--restart-delay", "50", "--limit", "3"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  const pid_t grown = answering_pid(port, "/grow?mb=64");
  ASSERT_NE(grown, 0) << server.error_output();
  ASSERT_TRUE(server.wait_for_output("not recycling it any more", 20s, true)) << server.error_output();

  const std::string log = server.error_output();
  EXPECT_EQ(count_of(log, std::regex("recycling it again in [0-9]+ ms")), 2) << log;
  EXPECT_EQ(count_of(log, std::regex("which keeps serving")), 3) << log;
  EXPECT_TRUE(process_alive(grown)) << log;
  for (int i = 0; i < 20; ++i) EXPECT_NE(answering_pid(port, "/"), 0) << log;  // both workers serve on
  // Given up: the master does not try again on its next memory checks.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(count_of(server.error_output(), std::regex("which keeps serving")), 3) << server.error_output();
  stop_cleanly(server);
}

}  // namespace
}  // namespace multinode::test

// Hung workers (heartbeat_timeout), on the hello example: a worker whose event
// loop stops (SIGSTOP) is killed and replaced in bounded time with a log line
// that says so; with the heartbeat off it is left alone.
#include "process.hpp"

#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <algorithm>
#include <csignal>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

using http::test::Client;
using http::test::get;
using clock = std::chrono::steady_clock;

const std::regex greeting("Hello from node ([0-9]+) \\(pid ([0-9]+)\\)\n");

ChildProcess start_hello(std::uint16_t port, const std::string& heartbeat_timeout) {
  return ChildProcess::start({example_path("hello"), "--port", std::to_string(port), "--nodes", "3", "--host",
                              "127.0.0.1", "--heartbeat-timeout", heartbeat_timeout});
}

// What a test stopped is let go again, whatever the test's outcome.
struct Stopped {
  explicit Stopped(pid_t pid) : pid(pid) { ::kill(pid, SIGSTOP); }
  ~Stopped() { ::kill(pid, SIGCONT); }
  pid_t pid;
};

// Asks the server until the process `pid` answers (with the shared socket any process
// may accept; the connections stay open so that one process does not take them all).
bool served_by(std::uint16_t port, pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::vector<std::unique_ptr<Client>> open;
  while (clock::now() < deadline && open.size() < 500) {
    auto client = std::make_unique<Client>(port);
    if (!client->send(get())) return false;
    const auto response = client->read_response();
    std::smatch match;
    if (response && std::regex_match(response->body, match, greeting) && std::stoi(match[2]) == pid)
      return true;
    open.push_back(std::move(client));
  }
  return false;
}

TEST(Heartbeat, AStoppedWorkerIsKilledAndReplacedWithinTheTimeout) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, "1000");
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 2, 10s)) << hello.error_output();
  const std::vector<pid_t> before = child_pids(hello.pid());
  ASSERT_EQ(before.size(), 2u);
  const pid_t victim = before.front();

  const auto stopped_at = clock::now();
  Stopped stopped(victim);
  // Detected within the timeout and a check (1.25 s after the last beat, at most
  // 1.5 s after the stop), SIGKILL 250 ms later: gone and replaced by 2.5 s.
  EXPECT_TRUE(wait_process_gone(victim, 2500ms)) << hello.error_output();
  pid_t replacement = 0;
  while (replacement == 0 && clock::now() - stopped_at < 2500ms) {
    for (const pid_t pid : child_pids(hello.pid())) {
      if (std::find(before.begin(), before.end(), pid) == before.end()) replacement = pid;
    }
    if (replacement == 0) std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(replacement, 0) << "no new worker within 2.5 s\n" << hello.error_output();

  // The log says which worker hung, for how long, and what was done.
  ASSERT_TRUE(hello.wait_for_output("(it was hung)", 2s, /*in_stderr=*/true)) << hello.error_output();
  const std::string log = hello.error_output();
  const std::regex hung("worker [0-9]+ \\(slot [0-9]+, pid " + std::to_string(victim) +
                        "\\) is hung: no heartbeat for [0-9]+\\.[0-9] s: SIGABRT, then SIGKILL in 250 ms");
  EXPECT_TRUE(std::regex_search(log, hung)) << log;

  ASSERT_TRUE(hello.wait_for_log_count("is ready", 3, 5s)) << hello.error_output();
  EXPECT_TRUE(served_by(port, replacement, 10s)) << hello.error_output();
  EXPECT_TRUE(process_alive(before.back()));  // the other worker was left alone

  hello.signal(SIGTERM);
  const auto status = hello.wait(10s);
  ASSERT_TRUE(status.has_value()) << hello.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << hello.error_output();
}

TEST(Heartbeat, ZeroTurnsItOff) {
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, "0");
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 2, 10s)) << hello.error_output();
  const std::vector<pid_t> before = child_pids(hello.pid());
  ASSERT_EQ(before.size(), 2u);
  {
    Stopped stopped(before.front());
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(process_alive(before.front()));
    EXPECT_EQ(child_pids(hello.pid()).size(), 2u);
    EXPECT_EQ(hello.error_output().find("hung"), std::string::npos) << hello.error_output();
  }  // SIGCONT: it serves on and stops cleanly with the others
  hello.signal(SIGTERM);
  const auto status = hello.wait(10s);
  ASSERT_TRUE(status.has_value()) << hello.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << hello.error_output();
  EXPECT_EQ(hello.error_output().find("was killed"), std::string::npos) << hello.error_output();
}

TEST(Heartbeat, AnIdleWorkerIsNotHung) {
  // Beats come from a timer, not from requests: a worker with nothing to do keeps beating.
  const std::uint16_t port = free_port();
  auto hello = start_hello(port, "200");
  ASSERT_TRUE(hello.wait_for_log_count("is ready", 2, 10s)) << hello.error_output();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(hello.error_output().find("hung"), std::string::npos) << hello.error_output();
  EXPECT_EQ(child_pids(hello.pid()).size(), 2u);
  hello.signal(SIGTERM);
  const auto status = hello.wait(10s);
  ASSERT_TRUE(status.has_value()) << hello.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << hello.error_output();
}

}  // namespace
}  // namespace multinode::test

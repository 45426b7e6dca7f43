// Signals to the master beyond TERM/INT: HUP (rolling restart), TTIN and TTOU (one worker more or less).
#include "process.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <csignal>
#include <set>
#include <thread>

namespace multinode::test {
namespace {

std::vector<pid_t> wait_for_children(pid_t master, std::size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<pid_t> children = child_pids(master);
  while (children.size() != count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    children = child_pids(master);
  }
  return children;
}

// One full exchange: connect, greeting, echo of a line, close. False on any failure.
bool exchange(std::uint16_t port) {
  const int fd = connect_tcp(port, 2s);
  if (fd < 0) return false;
  const auto greeting = read_line(fd, 5s);
  const bool ok = greeting.has_value() && greeting->rfind("node ", 0) == 0 && write_all(fd, "ping\n") &&
                  read_line(fd, 5s) == std::optional<std::string>("ping");
  ::close(fd);
  return ok;
}

TEST(Signals, HupReplacesEveryWorkerWithoutAFailedConnection) {
  auto server = ChildProcess::start({test_program_path("test_server"), "--nodes", "3", "--no-master-listen"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  const auto before = wait_for_children(server.pid(), 3, 10s);
  ASSERT_EQ(before.size(), 3u);
  ASSERT_TRUE(exchange(port));

  std::atomic<bool> done{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::thread client([&] {
    for (int i = 0; i < 100000 && !done; ++i) (exchange(port) ? ok : failed)++;
  });
  std::this_thread::sleep_for(100ms);
  server.signal(SIGHUP);
  // Every old worker is gone once the rolling restart is through.
  bool replaced = false;
  for (int i = 0; i < 1000 && !replaced; ++i) {
    std::this_thread::sleep_for(10ms);
    const auto now = child_pids(server.pid());
    replaced = now.size() == 3;
    for (const pid_t pid : before) replaced = replaced && std::find(now.begin(), now.end(), pid) == now.end();
  }
  std::this_thread::sleep_for(100ms);
  done = true;
  client.join();
  EXPECT_TRUE(replaced) << server.error_output();
  EXPECT_EQ(failed.load(), 0) << "connections failed during the rolling restart";
  EXPECT_GT(ok.load(), 0);
  EXPECT_TRUE(server.wait_for_output("rolling restart", 1s, true));
  EXPECT_FALSE(server.exited());
}

TEST(Signals, TtinAddsAWorkerAndTtouRemovesOne) {
  auto server = ChildProcess::start({test_program_path("test_server"), "--nodes", "2"});
  ASSERT_NE(server.wait_for_port(), 0) << server.error_output();
  ASSERT_EQ(wait_for_children(server.pid(), 1, 10s).size(), 1u);

  server.signal(SIGTTIN);
  EXPECT_EQ(wait_for_children(server.pid(), 2, 10s).size(), 2u) << server.error_output();
  server.signal(SIGTTOU);
  EXPECT_EQ(wait_for_children(server.pid(), 1, 10s).size(), 1u) << server.error_output();
  std::this_thread::sleep_for(200ms);  // a removed worker is not restarted
  EXPECT_EQ(child_pids(server.pid()).size(), 1u) << server.error_output();
}

TEST(Signals, ReuseportModeServesFromEveryProcessAndSurvivesAKill) {
  auto server = ChildProcess::start(
      {test_program_path("test_server"), "--nodes", "2", "--reuseport", "--min-uptime", "0"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  const auto workers = wait_for_children(server.pid(), 1, 10s);
  ASSERT_EQ(workers.size(), 1u);
  ASSERT_TRUE(server.wait_for_output("is ready", 10s, true));
  std::set<std::string> greetings;
  for (int i = 0; i < 400 && greetings.size() < 2; ++i) {
    const int fd = connect_tcp(port);
    ASSERT_GE(fd, 0);
    if (auto line = read_line(fd)) greetings.insert(*line);
    ::close(fd);
  }
  EXPECT_EQ(greetings.size(), 2u) << "SO_REUSEPORT spreads connections over both slots";

  ::kill(workers[0], SIGKILL);
  // Connections hashed to the dead worker's socket wait in its queue for the replacement.
  for (int i = 0; i < 50; ++i)
    EXPECT_TRUE(exchange(port)) << "connection " << i << "\n" << server.error_output();
}

TEST(Signals, TermToTheWholeProcessGroupStopsWithoutRestartingAnyone) {
  // As Ctrl-C or a service manager does: every process gets the signal at once.
  // min_uptime 0 makes the supervisor's normal reaction an immediate restart.
  for (int round = 0; round < 3; ++round) {
    auto server =
        ChildProcess::start({test_program_path("test_server"), "--nodes", "3", "--min-uptime", "0"});
    ASSERT_NE(server.wait_for_port(), 0) << server.error_output();
    ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
    ASSERT_EQ(::kill(-server.pid(), SIGTERM), 0);
    const auto status = server.wait(15s);
    ASSERT_TRUE(status.has_value()) << server.error_output();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
    EXPECT_EQ(server.error_output().find("started worker"), std::string::npos);
    EXPECT_EQ(server.error_output().find("is ready", server.error_output().find("stopping gracefully")),
              std::string::npos)
        << "a worker was restarted during the stop:\n"
        << server.error_output();
  }
}

}  // namespace
}  // namespace multinode::test

// The process model and supervision, tested on the real programs over loopback.
#include "process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <set>
#include <thread>

namespace multinode::test {
namespace {

struct Greeting {
  unsigned id = 0;
  pid_t pid = 0;
};

// Connects and reads the "node <id> pid <pid>" line; the fd is closed unless kept.
// With a timeout of more than 5 s the connection is retried while the port is not
// open yet (the server is starting); otherwise one refused connection is a failure.
std::optional<Greeting> greet(std::uint16_t port, int* keep_fd = nullptr,
                              std::chrono::milliseconds timeout = 5s) {
  const int fd = timeout > 5s ? wait_for_connect(port, timeout) : connect_tcp(port, timeout);
  if (fd < 0) return std::nullopt;
  const auto line = read_line(fd, timeout);
  if (keep_fd != nullptr)
    *keep_fd = fd;
  else
    ::close(fd);
  if (!line) return std::nullopt;
  Greeting g;
  if (std::sscanf(line->c_str(), "node %u pid %d", &g.id, &g.pid) != 2) return std::nullopt;
  return g;
}

ChildProcess start_server(std::vector<std::string> args) {
  args.insert(args.begin(), test_program_path("test_server"));
  return ChildProcess::start(args);
}

bool can_bind(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool ok =
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 && ::listen(fd, 1) == 0;
  ::close(fd);
  return ok;
}

TEST(Supervisor, ThreeNodesAreThreeServingProcesses) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(port), "--nodes", "3", "--host", "127.0.0.1"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  std::set<pid_t> pids;
  std::set<unsigned> ids;
  // Keep the connections open so that a busy process is not always the first to accept.
  std::vector<int> open;
  for (int i = 0; i < 600 && pids.size() < 3; ++i) {
    int fd = -1;
    const auto g = greet(port, &fd);
    ASSERT_TRUE(g.has_value()) << server.error_output();
    open.push_back(fd);
    pids.insert(g->pid);
    ids.insert(g->id);
    if (i % 50 == 49) std::this_thread::sleep_for(20ms);
  }
  for (const int fd : open) ::close(fd);
  EXPECT_EQ(pids.size(), 3u);
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_TRUE(pids.count(server.pid()) == 1) << "the master serves too by default";
}

TEST(Supervisor, MasterThatDoesNotListenServesNothing) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start({example_path("echo"), "--port", std::to_string(port), "--nodes", "2",
                                     "--host", "127.0.0.1", "--no-master-listen"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  std::set<pid_t> pids;
  for (int i = 0; i < 100; ++i) {
    const auto g = greet(port, nullptr, 10s);
    ASSERT_TRUE(g.has_value()) << server.error_output();
    pids.insert(g->pid);
  }
  EXPECT_EQ(pids.count(server.pid()), 0u);
  const auto children = child_pids(server.pid());
  EXPECT_EQ(children.size(), 2u);
  for (const pid_t pid : pids) EXPECT_NE(std::find(children.begin(), children.end(), pid), children.end());
}

TEST(Supervisor, KilledWorkerIsReplacedAndQueuedConnectionIsServed) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start({example_path("echo"), "--port", std::to_string(port), "--nodes", "1",
                                     "--host", "127.0.0.1", "--no-master-listen"});
  const auto before = greet(port, nullptr, 10s);
  ASSERT_TRUE(before.has_value()) << server.error_output();
  ASSERT_NE(before->pid, server.pid());

  ASSERT_EQ(::kill(before->pid, SIGKILL), 0);
  // No process accepts right now: this connection waits in the master's accept queue.
  // One attempt only: a refused connection fails the test.
  int fd = -1;
  const auto after = greet(port, &fd, 5s);
  ASSERT_TRUE(after.has_value()) << "a connection made while the worker was dead was not served\n"
                                 << server.error_output();
  EXPECT_NE(after->pid, before->pid);
  EXPECT_GT(after->id, before->id) << "a replacement gets a new id";
  ASSERT_TRUE(write_all(fd, "still there?\n"));
  EXPECT_EQ(read_line(fd), "still there?");
  ::close(fd);
  EXPECT_TRUE(server.wait_for_output("was killed by SIGKILL", 5s, true)) << server.error_output();
  EXPECT_TRUE(wait_process_gone(before->pid, 2s)) << "the dead worker was not reaped";
}

TEST(Supervisor, KilledMasterTakesEveryWorkerAndThePortWithIt) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(port), "--nodes", "3", "--host", "127.0.0.1"});
  ASSERT_TRUE(greet(port, nullptr, 10s).has_value()) << server.error_output();
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  std::vector<pid_t> workers;
  for (int i = 0; i < 200 && workers.size() < 2; ++i) {
    workers = child_pids(server.pid());
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(workers.size(), 2u);

  server.signal(SIGKILL);
  ASSERT_TRUE(server.wait(5s).has_value());
  const auto killed_at = std::chrono::steady_clock::now();
  for (const pid_t pid : workers)
    EXPECT_TRUE(wait_process_gone(pid, 1s)) << "worker " << pid << " outlived its master";
  bool bound = false;
  while (!bound && std::chrono::steady_clock::now() - killed_at < 1s) {
    bound = can_bind(port);
    if (!bound) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(bound) << "the port was still held 1 s after the master died";
}

TEST(Supervisor, SigtermFinishesTheConnectionInProgressAndExitsZero) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(port), "--nodes", "2", "--host", "127.0.0.1"});
  int fd = -1;
  ASSERT_TRUE(greet(port, &fd, 10s).has_value()) << server.error_output();
  const auto workers = child_pids(server.pid());
  ASSERT_TRUE(write_all(fd, "before\n"));
  ASSERT_EQ(read_line(fd), "before");

  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_output("stopping gracefully", 5s, true));
  // The connection in progress goes on until the client is done with it.
  ASSERT_TRUE(write_all(fd, "during the stop\n"));
  EXPECT_EQ(read_line(fd), "during the stop");
  EXPECT_FALSE(server.wait(200ms).has_value()) << "the master exited with a connection in progress";
  ::close(fd);

  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value()) << server.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
  for (const pid_t pid : workers) EXPECT_TRUE(wait_process_gone(pid, 2s));
  EXPECT_TRUE(can_bind(port));
}

TEST(Supervisor, CrashLoopBacksOffThenGivesUpAndSaysWhy) {
  const std::uint16_t port = free_port();
  auto server = start_server({"--port", std::to_string(port), "--nodes", "1", "--no-master-listen",
                              "--worker-exit", "3", "--restart-delay", "20", "--limit", "4"});
  const auto status = server.wait(20s);
  ASSERT_TRUE(status.has_value()) << "the master kept restarting a crashing worker\n"
                                  << server.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << "nothing serves any more: exit status 1";
  const std::string log = server.error_output();
  // The delay doubles at each young death...
  EXPECT_NE(log.find("exited with status 3"), std::string::npos) << log;
  EXPECT_NE(log.find("restarting slot 1 in 20 ms"), std::string::npos) << log;
  EXPECT_NE(log.find("restarting slot 1 in 40 ms"), std::string::npos) << log;
  EXPECT_NE(log.find("restarting slot 1 in 80 ms"), std::string::npos) << log;
  // ...and the fourth death in a row ends it, with the reason.
  EXPECT_EQ(log.find("restarting slot 1 in 160 ms"), std::string::npos) << log;
  EXPECT_NE(log.find("giving up on it (crash loop)"), std::string::npos) << log;
}

TEST(Supervisor, NoRestartWhenRestartChildrenIsOff) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start({example_path("echo"), "--port", std::to_string(port), "--nodes", "2",
                                     "--host", "127.0.0.1", "--no-restart"});
  ASSERT_TRUE(server.wait_for_output("is ready", 10s, true));
  const auto workers = child_pids(server.pid());
  ASSERT_EQ(workers.size(), 1u);
  ::kill(workers[0], SIGKILL);
  ASSERT_TRUE(server.wait_for_output("not restarting it (restart_children is off)", 5s, true));
  EXPECT_TRUE(wait_process_gone(workers[0], 2s));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(child_pids(server.pid()).empty());
  EXPECT_TRUE(greet(port).has_value()) << "the master still serves";
}

TEST(Supervisor, MasterFdCountIsStableOverManyRestarts) {
  auto server = start_server({"--nodes", "3", "--min-uptime", "0"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  for (int i = 0; i < 200 && child_pids(server.pid()).size() < 2; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(200ms);  // let the mesh settle
  const int fds_at_start = count_open_fds(server.pid());

  constexpr int restarts = 200;
  for (int i = 0; i < restarts; ++i) {
    const auto workers = child_pids(server.pid());
    ASSERT_FALSE(workers.empty());
    const pid_t victim = workers[static_cast<std::size_t>(i) % workers.size()];
    ::kill(victim, SIGKILL);
    ASSERT_TRUE(wait_process_gone(victim, 5s));
    // Wait for the replacement to be up before the next kill.
    std::vector<pid_t> now;
    for (int tries = 0; tries < 1000; ++tries) {
      now = child_pids(server.pid());
      if (now.size() == 2 && std::find(now.begin(), now.end(), victim) == now.end()) break;
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(now.size(), 2u) << server.error_output();
  }
  // The last replacement gets ready and meshed: on a loaded machine that can take
  // longer than a fixed pause, so wait for the count (bounded) before comparing.
  int fds_at_end = count_open_fds(server.pid());
  for (int tries = 0; tries < 100 && fds_at_end != fds_at_start; ++tries) {
    std::this_thread::sleep_for(50ms);
    fds_at_end = count_open_fds(server.pid());
  }
  EXPECT_EQ(fds_at_end, fds_at_start);
  for (const pid_t pid : child_pids(server.pid())) EXPECT_TRUE(process_alive(pid)) << "zombie " << pid;
  EXPECT_TRUE(greet(port).has_value());
}

TEST(Supervisor, ServesOnASocketPassedBySystemdConvention) {
  // A listening socket made here, passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID of the program.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 64), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const std::uint16_t port = ntohs(address.sin_port);

  // The program is told to bind a port that is taken: it must not try to bind at all.
  const int occupied = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in taken{};
  taken.sin_family = AF_INET;
  taken.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(occupied, reinterpret_cast<sockaddr*>(&taken), sizeof taken), 0);
  ASSERT_EQ(::listen(occupied, 1), 0);
  length = sizeof taken;
  ::getsockname(occupied, reinterpret_cast<sockaddr*>(&taken), &length);

  // sh's $$ is the pid that exec keeps, so LISTEN_PID names the program itself.
  const std::string command = "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec " + example_path("echo") +
                              " --port " + std::to_string(ntohs(taken.sin_port)) +
                              " --nodes 2 --host 127.0.0.1";
  auto server = ChildProcess::start({"/bin/sh", "-c", command}, {}, {listener});
  ::close(listener);
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  std::set<pid_t> pids;
  for (int i = 0; i < 300 && pids.size() < 2; ++i) {
    int fd = -1;
    const auto g = greet(port, &fd, 10s);
    ASSERT_TRUE(g.has_value()) << server.error_output();
    pids.insert(g->pid);
    ::close(fd);
  }
  EXPECT_EQ(pids.size(), 2u) << "the worker got the inherited socket too";
  ::close(occupied);
}

}  // namespace
}  // namespace multinode::test

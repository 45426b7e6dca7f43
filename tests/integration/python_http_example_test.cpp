// examples/run/python_http.py, the Python HTTP server of examples/run/, under the
// `multinode` command and alone: it serves the supervisor's socket (fd 3) from
// every worker and names the worker that answered; it stops on SIGTERM with
// status 0, closing an idle keep-alive connection; rolling restarts under clients
// making requests back to back (new connections, and one keep-alive connection)
// lose none; LISTEN_FDS meant for another process
// (LISTEN_PID not its own) are ignored and it binds --port itself.
#include "process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

constexpr const char* python = "/usr/bin/python3";
const std::string script = std::string(MULTINODE_SOURCE_DIR) + "/examples/run/python_http.py";

int exit_status(ChildProcess& process, std::chrono::milliseconds timeout = 20s) {
  const auto status = process.wait(timeout);
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

class PythonHttpExample : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(python, X_OK) != 0)
      GTEST_SKIP() << python << " is not installed (scripts/bootstrap.sh test)";
    port_ = free_port();
  }

  ChildProcess start(int nodes) {
    return ChildProcess::start({MULTINODE_COMMAND, "run", "-n", std::to_string(nodes), "-p",
                                std::to_string(port_), "--host", "127.0.0.1", "--control",
                                dir_.file("control.sock"), "--", python, script});
  }

  int control(const std::string& command) {
    ChildProcess client =
        ChildProcess::start({MULTINODE_COMMAND, command, "--control", dir_.file("control.sock")});
    return exit_status(client, 15s);
  }

  // Asks until `count` different pids have answered (bounded); those pids.
  std::set<pid_t> answering_pids(std::size_t count) {
    std::set<pid_t> pids;
    for (int i = 0; i < 400 && pids.size() < count; ++i) {
      const pid_t pid = greet(port_);
      if (pid > 0) pids.insert(pid);
    }
    return pids;
  }

  TempDir dir_{"multinode-python-http"};
  std::uint16_t port_ = 0;
};

TEST_F(PythonHttpExample, EveryWorkerServesTheSupervisorsSocketAndStopsWithStatusZero) {
  ChildProcess supervisor = start(2);
  ASSERT_TRUE(supervisor.wait_for_log_count("is ready", 2, 20s)) << supervisor.error_output();
  const std::set<pid_t> pids = answering_pids(2);
  ASSERT_EQ(pids.size(), 2U) << supervisor.output() << supervisor.error_output();
  std::vector<pid_t> children = child_pids(supervisor.pid());
  std::sort(children.begin(), children.end());
  EXPECT_EQ(std::vector<pid_t>(pids.begin(), pids.end()), children);  // the workers, not the supervisor
  // Each worker says it serves the socket it was given.
  for (const pid_t pid : pids) {
    EXPECT_TRUE(supervisor.wait_for_output("(pid " + std::to_string(pid) + ") serving http://", 5s))
        << supervisor.output();
  }

  // A keep-alive connection idle at the stop is closed by the worker, which then exits.
  const int idle = connect_tcp(port_, 5s);
  ASSERT_GE(idle, 0);
  ASSERT_TRUE(write_all(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_NE(read_until(idle, ")\n", 5s).find("Hello from node "), std::string::npos);
  supervisor.signal(SIGTERM);
  bool closed = false;
  read_until_closed(idle, 15s, &closed);
  ::close(idle);
  EXPECT_TRUE(closed);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
  for (const pid_t pid : pids) EXPECT_TRUE(wait_process_gone(pid, 5s));
  for (const pid_t pid : pids) {
    EXPECT_NE(supervisor.error_output().find("pid " + std::to_string(pid) + ") exited with status 0"),
              std::string::npos)
        << supervisor.error_output();
  }
}

TEST_F(PythonHttpExample, RollingRestartsUnderLoadLoseNoRequest) {
  ChildProcess supervisor = start(2);
  ASSERT_TRUE(supervisor.wait_for_log_count("is ready", 2, 20s)) << supervisor.error_output();
  ASSERT_EQ(answering_pids(2).size(), 2U);
  // The number of times the workers said they serve (the program's own readiness).
  const auto serving = [&] {
    const std::string out = supervisor.output();
    std::size_t count = 0;
    for (auto at = out.find(") serving http://"); at != std::string::npos;
         at = out.find(") serving http://", at + 1))
      ++count;
    return count;
  };
  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0}, kept_answered{0}, kept_failed{0};
  std::thread client([&] {
    while (!done) {
      (greet(port_) > 0 ? answered : failed)++;
    }
  });
  // A keep-alive client: one connection for as long as the server keeps it (a
  // stopping worker answers "Connection: close", then the client opens another).
  std::thread keep_alive([&] {
    int fd = -1;
    while (!done) {
      if (fd < 0 && (fd = connect_tcp(port_, 5s)) < 0) {
        kept_failed++;
        continue;
      }
      const std::string response =
          write_all(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n") ? read_until(fd, ")\n", 5s) : "";
      if (response.rfind("HTTP/1.1 200 ", 0) != 0 || response.find("Hello from node ") == std::string::npos) {
        kept_failed++;
        ::close(fd);
        fd = -1;
        continue;
      }
      kept_answered++;
      if (response.find("Connection: close") != std::string::npos) {
        ::close(fd);
        fd = -1;
      }
    }
    if (fd >= 0) ::close(fd);
  });
  // Each reload replaces both workers: 2 more "is ready" lines and 2 exits with status 0.
  // The next one once the new workers serve (a worker that has not yet installed its
  // SIGTERM handler, a few ms after exec, would be killed by the signal).
  std::string trouble;
  for (int reload = 1; reload <= 2 && trouble.empty(); ++reload) {
    const auto bounded = [](auto&& predicate) {
      for (int i = 0; i < 400; ++i) {
        if (predicate()) return true;
        std::this_thread::sleep_for(50ms);
      }
      return false;
    };
    const std::size_t want = 2 + 2 * static_cast<std::size_t>(reload);
    if (control("reload") != 0) {
      trouble = "multinode reload failed";
    } else if (!supervisor.wait_for_log_count("is ready", want, 20s) ||
               !supervisor.wait_for_log_count("exited with status 0", want - 2, 20s) ||
               !bounded([&] { return serving() >= want; })) {
      trouble = "reload " + std::to_string(reload) + " did not replace both workers gracefully";
    }
  }
  done = true;
  client.join();
  keep_alive.join();
  ASSERT_EQ(trouble, "") << supervisor.output() << supervisor.error_output();
  EXPECT_EQ(failed, 0);
  EXPECT_GT(answered, 0);
  EXPECT_EQ(kept_failed, 0);
  EXPECT_GT(kept_answered, 0);
  ASSERT_EQ(control("stop"), 0);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
}

TEST_F(PythonHttpExample, AloneItIgnoresAnotherProcesssListenFdsAndBindsItsPort) {
  ChildProcess alone = ChildProcess::start({python, script, "--port", std::to_string(port_)},
                                           {"LISTEN_FDS=1", "LISTEN_PID=1", "MULTINODE_ID=7"});
  ASSERT_TRUE(alone.wait_for_output("serving http://127.0.0.1:" + std::to_string(port_), 10s))
      << alone.error_output();
  EXPECT_NE(alone.error_output().find("LISTEN_PID=1 is not this process"), std::string::npos);
  EXPECT_EQ(greet(port_), alone.pid());
  alone.signal(SIGTERM);
  EXPECT_EQ(exit_status(alone, 10s), 0) << alone.error_output();
}

}  // namespace
}  // namespace multinode::test

// websocket_echo as a user runs it (two processes behind one port), spoken to by
// real clients: Node's ws from npm (the repository's lockfile) and Debian's
// python3-websockets. Each client script checks its exchanges and prints "ok";
// again with permessage-deflate (websocket_echo --deflate), which both clients offer.
#include "process.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <filesystem>
#include <string>

namespace multinode::test {
namespace {

struct Echo {
  explicit Echo(bool deflate = false) : port(free_port()), deflate(deflate), process(start()) {
    const int fd = wait_for_connect(port, 10s);
    EXPECT_GE(fd, 0) << process.error_output();
    if (fd >= 0) ::close(fd);
    EXPECT_TRUE(process.wait_for_log_count("is ready", 1, 10s)) << process.error_output();
  }
  ChildProcess start() const {
    std::vector<std::string> argv{example_path("websocket_echo"),
                                  "--port",
                                  std::to_string(port),
                                  "--nodes",
                                  "2",
                                  "--host",
                                  "127.0.0.1"};
    if (deflate) argv.emplace_back("--deflate");
    return ChildProcess::start(argv);
  }
  std::uint16_t port;
  bool deflate;
  ChildProcess process;
};

std::string script(const char* name) {
  return std::string(MULTINODE_SOURCE_DIR) + "/tests/integration/websocket_clients/" + name;
}

void run_client(const std::vector<std::string>& argv) {
  ChildProcess client = ChildProcess::start(argv);
  const auto status = client.wait(30s);
  ASSERT_TRUE(status) << "the client did not finish within 30 s";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << client.error_output();
  EXPECT_EQ(client.output(), "ok\n") << client.error_output();
}

TEST(WebSocketClients, NodeWs) {
  ASSERT_TRUE(std::filesystem::exists(std::string(MULTINODE_SOURCE_DIR) + "/node_modules/ws"))
      << "Node's ws is missing: run scripts/bootstrap.sh test (npm ci)";
  Echo echo;
  for (int i = 0; i < 3; ++i)
    run_client({"/usr/bin/node", script("node_client.js"), std::to_string(echo.port)});
}

TEST(WebSocketClients, PythonWebsockets) {
  Echo echo;
  for (int i = 0; i < 3; ++i)
    run_client({"/usr/bin/python3", script("python_client.py"), std::to_string(echo.port)});
}

TEST(WebSocketClients, NodeWsWithPermessageDeflate) {
  ASSERT_TRUE(std::filesystem::exists(std::string(MULTINODE_SOURCE_DIR) + "/node_modules/ws"))
      << "Node's ws is missing: run scripts/bootstrap.sh test (npm ci)";
  Echo echo(/*deflate=*/true);
  for (int i = 0; i < 2; ++i)
    run_client({"/usr/bin/node", script("node_client.js"), std::to_string(echo.port), "deflate"});
}

TEST(WebSocketClients, PythonWebsocketsWithPermessageDeflate) {
  Echo echo(/*deflate=*/true);
  for (int i = 0; i < 2; ++i)
    run_client({"/usr/bin/python3", script("python_client.py"), std::to_string(echo.port), "deflate"});
}

}  // namespace
}  // namespace multinode::test

// examples/mesh: every process sends a text, a binary and a JSON message to
// every other one over the mesh; the master reports when all arrived intact.
#include "process.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <string>

namespace multinode::test {
namespace {

void expect_mesh(int nodes) {
  auto mesh =
      ChildProcess::start({example_path("mesh"), "--nodes", std::to_string(nodes), "--timeout", "60"});
  auto status = mesh.wait(90s);
  ASSERT_TRUE(status.has_value()) << "mesh did not exit\n" << mesh.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << mesh.output() << mesh.error_output();
  const int messages = 3 * nodes * (nodes - 1);
  EXPECT_NE(mesh.output().find("mesh: " + std::to_string(nodes) + " nodes, " + std::to_string(messages) +
                               " messages verified"),
            std::string::npos)
      << mesh.output() << mesh.error_output();
}

TEST(Mesh, TwoNodes) {
  expect_mesh(2);
}
TEST(Mesh, FiveNodesEveryPair) {
  expect_mesh(5);
}
TEST(Mesh, OneNodeHasNoPeers) {
  expect_mesh(1);
}

}  // namespace
}  // namespace multinode::test

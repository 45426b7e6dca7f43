// examples/chat_tcp: a line typed on a connection served by any process reaches
// the connections of every process, over the mesh.
#include "process.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

struct Client {
  int fd = -1;
  unsigned node = 0;
};

class ChatTcp : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    chat_.emplace(ChildProcess::start(
        {example_path("chat_tcp"), "--port", std::to_string(port_), "--nodes", "3", "--host", "127.0.0.1"}));
    ASSERT_TRUE(chat_->wait_for_log_count("is ready", 2, 20s)) << chat_->error_output();
  }
  void TearDown() override {
    for (auto& [node, clients] : by_node_) {
      for (auto& client : clients) ::close(client.fd);
    }
  }

  // Connects until there are `per_node` connections on each of `wanted` processes.
  void connect_clients(std::size_t wanted, std::size_t per_node) {
    for (int attempt = 0; attempt < 2000; ++attempt) {
      std::size_t full = 0;
      for (auto& [node, clients] : by_node_) full += clients.size() >= per_node;
      if (full >= wanted) return;
      Client client;
      client.fd = connect_tcp(port_);
      ASSERT_GE(client.fd, 0);
      auto greeting = read_line(client.fd);
      ASSERT_TRUE(greeting.has_value()) << chat_->error_output();
      ASSERT_EQ(std::sscanf(greeting->c_str(), "welcome to node %u", &client.node), 1) << *greeting;
      auto& clients = by_node_[client.node];
      if (clients.size() < per_node)
        clients.push_back(client);
      else
        ::close(client.fd);
      if (attempt % 50 == 49) std::this_thread::sleep_for(20ms);
    }
    FAIL() << "the connections did not spread over " << wanted << " processes";
  }

  std::uint16_t port_ = 0;
  std::optional<ChildProcess> chat_;
  std::map<unsigned, std::vector<Client>> by_node_;
};

TEST_F(ChatTcp, ALineReachesEveryOtherConnectionOfEveryProcess) {
  connect_clients(3, 2);
  ASSERT_FALSE(HasFatalFailure());
  std::vector<Client> all;
  for (auto& [node, clients] : by_node_) all.insert(all.end(), clients.begin(), clients.end());
  // Each client speaks once; every other client hears each line, from whichever process.
  for (std::size_t speaker = 0; speaker < all.size(); ++speaker) {
    std::string line =
        "line " + std::to_string(speaker) + " from a client of node " + std::to_string(all[speaker].node);
    ASSERT_TRUE(write_all(all[speaker].fd, line + "\n"));
    for (std::size_t listener = 0; listener < all.size(); ++listener) {
      if (listener == speaker) continue;
      auto heard = read_line(all[listener].fd, 10s);
      ASSERT_TRUE(heard.has_value()) << "client " << listener << " (node " << all[listener].node
                                     << ") did not hear: " << line << "\n"
                                     << chat_->error_output();
      EXPECT_EQ(*heard, line);
    }
  }
}

TEST_F(ChatTcp, LinesKeepTheirOrderAndBytesThatAreNotUtf8Pass) {
  connect_clients(2, 1);
  ASSERT_FALSE(HasFatalFailure());
  auto it = by_node_.begin();
  Client a = it->second[0], b = std::next(it)->second[0];
  std::string burst;
  for (int i = 0; i < 200; ++i)
    burst += "message " + std::to_string(i) + (i == 100 ? " \xff\xfe" : "") + "\n";
  ASSERT_TRUE(write_all(a.fd, burst));
  for (int i = 0; i < 200; ++i) {
    auto heard = read_line(b.fd, 10s);
    ASSERT_TRUE(heard.has_value()) << i << "\n" << chat_->error_output();
    EXPECT_EQ(*heard, "message " + std::to_string(i) + (i == 100 ? " \xff\xfe" : ""));
  }
}

TEST_F(ChatTcp, StopsGracefullyOnTerm) {
  connect_clients(2, 1);
  ASSERT_FALSE(HasFatalFailure());
  chat_->signal(SIGTERM);
  auto status = chat_->wait(20s);
  ASSERT_TRUE(status.has_value()) << chat_->error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << chat_->error_output();
}

}  // namespace
}  // namespace multinode::test

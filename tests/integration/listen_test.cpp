// What listen() binds and hands out: IPv6, names, and listening sockets taken by
// the user's own code; what its error_code overloads return when it fails.
#include "process.hpp"

#include <multinode/multinode.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <set>

namespace multinode::test {
namespace {

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

TEST(Listen, ServesOnAnIpv6Literal) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback on this machine";
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(port), "--nodes", "2", "--host", "::1"});
  const int fd = wait_for_connect(port, 10s, "::1");
  ASSERT_GE(fd, 0) << server.error_output();
  const auto line = read_line(fd);
  ::close(fd);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->rfind("node ", 0), 0u);
  EXPECT_TRUE(server.wait_for_output("listening on [::1]:" + std::to_string(port), 1s, true))
      << server.error_output();
}

TEST(Listen, ANameIsBoundOnEveryAddressItResolvesTo) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(port), "--nodes", "1", "--host", "localhost"});
  const int v4 = wait_for_connect(port, 10s, "127.0.0.1");
  ASSERT_GE(v4, 0) << server.error_output();
  EXPECT_TRUE(read_line(v4).has_value());
  ::close(v4);
  if (ipv6_loopback_available() && server.error_output().find("[::1]") != std::string::npos) {
    const int v6 = connect_tcp(port, 2s, "::1");
    ASSERT_GE(v6, 0);
    EXPECT_TRUE(read_line(v6).has_value());
    ::close(v6);
  }
}

TEST(Listen, AnUnresolvableHostFailsWithAClearMessage) {
  auto server = ChildProcess::start({example_path("echo"), "--port", "0", "--host", "no-such-host.invalid"});
  const auto status = server.wait(20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_NE(server.error_output().find("cannot resolve host 'no-such-host.invalid'"), std::string::npos)
      << server.error_output();
}

TEST(Listen, APortInUseFailsWithAClearMessage) {
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length);
  auto server = ChildProcess::start(
      {example_path("echo"), "--port", std::to_string(ntohs(address.sin_port)), "--host", "127.0.0.1"});
  const auto status = server.wait(10s);
  ::close(holder);
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(server.error_output().find("another process listens there"), std::string::npos)
      << server.error_output();
}

TEST(Listen, UserCodeCanTakeTheListeningSockets) {
  auto server = ChildProcess::start({test_program_path("own_acceptor"), "--nodes", "2"});
  const std::uint16_t port = server.wait_for_port();
  ASSERT_NE(port, 0) << server.error_output();
  ASSERT_TRUE(server.wait_for_output("is ready", 10s, true)) << server.error_output();
  std::set<std::string> replies;
  for (int i = 0; i < 300 && replies.size() < 2; ++i) {
    const int fd = wait_for_connect(port, 5s);
    ASSERT_GE(fd, 0);
    if (auto line = read_line(fd)) replies.insert(*line);
    ::close(fd);
  }
  EXPECT_EQ(replies, (std::set<std::string>{"own 0", "own 1"}));
  server.signal(SIGTERM);
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
}

// A loopback socket holding a port, so that listen() on it fails.
class HeldPort {
 public:
  HeldPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~HeldPort() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

// In this process: nodes = 1 starts no worker, so a listen() that wrongly succeeded
// would not re-execute the test program.
multinode::Options one_process(std::uint16_t port, std::string host = "127.0.0.1") {
  return {.port = port, .nodes = 1, .host = std::move(host)};
}

TEST(ListenErrorCode, APortInUseIsAnErrorInsteadOfAnException) {
  HeldPort held;
  multinode::tcp::Server server([](boost::asio::ip::tcp::socket) {});
  std::error_code error = std::make_error_code(std::errc::interrupted);  // overwritten either way
  multinode::Nodes nodes = multinode::listen(one_process(held.port()), server, error);
  EXPECT_FALSE(nodes);
  EXPECT_EQ(error, std::errc::address_in_use) << error.message();

  error = std::make_error_code(std::errc::interrupted);
  multinode::Nodes without_server = multinode::listen(one_process(held.port()), error);
  EXPECT_FALSE(without_server);
  EXPECT_EQ(error, std::errc::address_in_use) << error.message();

  // The throwing overload reports the same code, with the message saying what to do.
  try {
    multinode::listen(one_process(held.port()), server);
    ADD_FAILURE() << "listen() on a port in use did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::address_in_use);
    EXPECT_NE(std::string(e.what()).find("another process listens there"), std::string::npos) << e.what();
  }
}

TEST(ListenErrorCode, EveryRefusalIsAnError) {
  std::error_code error;
  EXPECT_FALSE(multinode::listen(one_process(0, "no-such-host.invalid"), error));
  EXPECT_EQ(error, std::errc::invalid_argument) << error.message();

  multinode::Options no_process = one_process(0);
  no_process.nodes = 0;
  error.clear();
  EXPECT_FALSE(multinode::listen(no_process, error));
  EXPECT_EQ(error, std::errc::invalid_argument) << error.message();
}

TEST(ListenErrorCode, SuccessClearsTheErrorAndTheHandleIsTrue) {
  std::error_code error = std::make_error_code(std::errc::interrupted);
  multinode::Nodes nodes = multinode::listen(one_process(0), error);
  ASSERT_TRUE(nodes) << error.message();
  EXPECT_FALSE(error);
  EXPECT_TRUE(nodes.is_master());
  EXPECT_NE(nodes.local_port(), 0);
  // A failed handle can be replaced by a good one.
  multinode::Nodes empty;
  EXPECT_FALSE(empty);
  empty = std::move(nodes);
  EXPECT_TRUE(empty);
}

TEST(ListenErrorCode, AProgramSeesTheErrorAndNoWorkerStarts) {
  HeldPort held;
  // At debug level every worker start is logged ("started worker ...").
  auto server = ChildProcess::start(
      {test_program_path("own_acceptor"), "--nodes", "3", "--port", std::to_string(held.port())},
      {"MULTINODE_LOG_LEVEL=debug"});
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << server.error_output();
  EXPECT_NE(server.error_output().find("listen failed: Address already in use"), std::string::npos)
      << server.error_output();
  EXPECT_EQ(server.error_output().find("started worker"), std::string::npos) << server.error_output();
  EXPECT_EQ(server.error_output().find("is ready"), std::string::npos) << server.error_output();
}

}  // namespace
}  // namespace multinode::test

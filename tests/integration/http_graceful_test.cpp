// Graceful stop of the HTTP server seen from a keep-alive client: a request sent on
// an idle connection just after the stop began is answered, with Connection: close.
#include "process.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

namespace multinode::test {
namespace {

TEST(HttpGracefulStop, AnIdleKeepAliveConnectionGetsItsNextRequestAnsweredWithClose) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("hello"), "--port", std::to_string(port), "--nodes", "1", "--host", "127.0.0.1"});
  const int fd = wait_for_connect(port, 10s);
  ASSERT_GE(fd, 0) << server.error_output();
  const std::string request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_TRUE(write_all(fd, request));
  // The body ends with ")\n": read the whole first response.
  const std::string first = read_until(fd, ")\n", 5s);
  ASSERT_NE(first.find("HTTP/1.1 200"), std::string::npos) << first << server.error_output();
  ASSERT_EQ(first.find("Connection: close"), std::string::npos) << first;

  // The connection is idle now; the stop begins; the client sends its next request.
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_output("stopping gracefully", 5s, true)) << server.error_output();
  ASSERT_TRUE(write_all(fd, request));
  bool closed = false;
  const std::string second = read_until_closed(fd, 5s, &closed);
  ::close(fd);
  EXPECT_NE(second.find("HTTP/1.1 200"), std::string::npos) << "the request sent during the stop failed:\n"
                                                            << second;
  EXPECT_NE(second.find("Connection: close"), std::string::npos) << second;
  EXPECT_TRUE(closed);

  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value()) << server.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
}

TEST(HttpGracefulStop, AQuietKeepAliveConnectionIsClosedWhenTheGraceEnds) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("hello"), "--port", std::to_string(port), "--nodes", "1", "--host", "127.0.0.1"});
  const int fd = wait_for_connect(port, 10s);
  ASSERT_GE(fd, 0) << server.error_output();
  ASSERT_TRUE(write_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_NE(read_until(fd, ")\n", 5s).find("HTTP/1.1 200"), std::string::npos);
  server.signal(SIGTERM);
  bool closed = false;
  read_until_closed(fd, 5s, &closed);  // the default stop_grace is 1 s
  ::close(fd);
  EXPECT_TRUE(closed) << "an idle connection kept the stopping server open";
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value()) << server.error_output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace multinode::test

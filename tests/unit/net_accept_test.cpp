// The accept path shared by the TCP and HTTP servers (src/net/acceptor.hpp):
// sockets born close-on-exec and non-blocking with TCP_NODELAY, bursts larger
// than one wake-up, close() from inside the handler, the pause when out of fds.
#include "accepted_fd.hpp"
#include "net/acceptor.hpp"

#include <multinode/tcp.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

namespace multinode::test {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

tcp::acceptor loopback_listener(asio::io_context& io) {
  return tcp::acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
}

// A blocking client socket connected to port (the kernel completes the handshake
// before anyone accepts).
int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

void expect_born_right(int fd) {
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "would leak across exec";
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  int nodelay = 0;
  socklen_t size = sizeof nodelay;
  ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &size), 0);
  EXPECT_NE(nodelay, 0);
}

TEST(TcpServer, AcceptedSocketIsCloseOnExecNonBlockingWithNoDelay) {
  asio::io_context io;
  std::vector<tcp::socket> accepted;
  multinode::tcp::Server server([&](tcp::socket socket) { accepted.push_back(std::move(socket)); });
  std::vector<tcp::acceptor> listeners;
  listeners.push_back(loopback_listener(io));
  const std::uint16_t port = listeners.back().local_endpoint().port();
  server.start(io, std::move(listeners));
  Fds clients;
  clients.fds.push_back(connect_to(port));
  for (int i = 0; i < 100 && accepted.empty(); ++i) io.run_for(10ms);
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(server.accepted(), 1u);
  // The socket handed over is the one connected to our client.
  EXPECT_EQ(fd_connected_to(local_port_of(clients.fds[0])), accepted[0].native_handle());
  expect_born_right(accepted[0].native_handle());
  server.stop();
  accepted.clear();
  server.destroy_io_objects();
}

TEST(Acceptor, MoreThanOneBurstIsAcceptedOverSeveralWakeUps) {
  asio::io_context io;
  tcp::acceptor listener = loopback_listener(io);
  const std::uint16_t port = listener.local_endpoint().port();
  Fds clients;
  const int count = detail::Acceptor::burst * 2 + 10;
  for (int i = 0; i < count; ++i) clients.fds.push_back(connect_to(port));
  std::vector<tcp::socket> accepted;
  detail::Acceptor acceptor(
      std::move(listener), [&](tcp::socket socket) { accepted.push_back(std::move(socket)); }, "test");
  acceptor.start();
  // One completion handler per wake-up: a burst at most per handler.
  std::size_t handlers = 0;
  for (int i = 0; i < 200 && accepted.size() < static_cast<std::size_t>(count); ++i)
    handlers += io.run_one_for(10ms);
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(count));
  EXPECT_GE(handlers, 3u);
  for (auto& socket : accepted) expect_born_right(socket.native_handle());
  acceptor.destroy_io_objects();
}

TEST(Acceptor, CloseFromTheHandlerStopsTheBurst) {
  asio::io_context io;
  tcp::acceptor listener = loopback_listener(io);
  const std::uint16_t port = listener.local_endpoint().port();
  Fds clients;
  for (int i = 0; i < 3; ++i) clients.fds.push_back(connect_to(port));
  int calls = 0;
  std::unique_ptr<detail::Acceptor> acceptor;
  acceptor = std::make_unique<detail::Acceptor>(
      std::move(listener),
      [&](tcp::socket) {
        ++calls;
        acceptor->close();
      },
      "test");
  acceptor->start();
  io.run_for(100ms);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(acceptor->closed());
  acceptor.reset();
  io.run_for(10ms);  // nothing left that could call the handler
  EXPECT_EQ(calls, 1);
}

TEST(Acceptor, OutOfDescriptorsPausesInsteadOfSpinningThenResumes) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtimes need descriptors of their own (UBSan's vptr check
  // probes memory through a pipe and reports every virtual call as invalid
  // without one): out of fds is tested in the other builds.
  GTEST_SKIP() << "needs a process that can run out of descriptors";
#endif
  asio::io_context io;
  tcp::acceptor listener = loopback_listener(io);
  const std::uint16_t port = listener.local_endpoint().port();
  Fds clients;
  clients.fds.push_back(connect_to(port));
  std::vector<tcp::socket> accepted;
  detail::Acceptor acceptor(
      std::move(listener), [&](tcp::socket socket) { accepted.push_back(std::move(socket)); }, "test");
  // Every descriptor below the limit in use: accept4() fails with EMFILE.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  acceptor.start();
  const std::size_t handlers = io.run_for(150ms);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(accepted.empty());
  // A wake-up, then one pause of 100 ms (and maybe the next wake-up): a spinning
  // acceptor would have run thousands of handlers.
  EXPECT_LE(handlers, 4u);
  for (int i = 0; i < 50 && accepted.empty(); ++i) io.run_for(10ms);
  ASSERT_EQ(accepted.size(), 1u);
  expect_born_right(accepted[0].native_handle());
  acceptor.destroy_io_objects();
}

}  // namespace
}  // namespace multinode::test

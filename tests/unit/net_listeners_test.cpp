// Listening sockets: what bind_listeners() binds, SO_REUSEPORT groups, and the
// sockets inherited_listeners() takes by sd_listen_fds(3)'s convention.
#include "net/listeners.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

namespace multinode::detail {
namespace {

Options loopback(std::uint16_t port = 0) {
  Options options;
  options.port = port;
  options.host = "127.0.0.1";
  return options;
}

bool is_listening(int fd) {
  int listening = 0;
  socklen_t length = sizeof listening;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening != 0;
}

bool is_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

bool connects(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

void close_all(const std::vector<ListenSocket>& sockets) {
  for (const auto& socket : sockets) ::close(socket.fd);
}

// The error code of what bind_listeners() throws, and its message.
std::pair<std::error_code, std::string> bind_error(const Options& options, std::uint16_t port,
                                                   bool reuseport) {
  try {
    close_all(bind_listeners(options, port, reuseport));
  } catch (const std::system_error& e) {
    return {e.code(), e.what()};
  }
  return {};
}

TEST(BindListeners, BindsLoopbackOnAFreePort) {
  const auto sockets = bind_listeners(loopback(), 0, false);
  ASSERT_EQ(sockets.size(), 1u);
  const std::uint16_t port = local_port(sockets[0].fd);
  EXPECT_NE(port, 0);
  EXPECT_EQ(sockets[0].name, "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(is_listening(sockets[0].fd));
  EXPECT_TRUE(is_cloexec(sockets[0].fd));  // nothing leaks into a program the process starts
  EXPECT_TRUE(connects(port));
  close_all(sockets);
}

TEST(BindListeners, APortInUseIsAddressInUseWithAdvice) {
  const auto held = bind_listeners(loopback(), 0, false);
  const std::uint16_t port = local_port(held[0].fd);
  const auto [code, message] = bind_error(loopback(), port, false);
  EXPECT_EQ(code, std::errc::address_in_use);
  EXPECT_NE(message.find("cannot bind 127.0.0.1:" + std::to_string(port)), std::string::npos) << message;
  EXPECT_NE(message.find("pick another port"), std::string::npos) << message;
  close_all(held);
}

TEST(BindListeners, ReuseportMembersShareOnePort) {
  const auto first = bind_listeners(loopback(), 0, true);
  ASSERT_EQ(first.size(), 1u);
  const std::uint16_t port = local_port(first[0].fd);
  const auto second = bind_listeners(loopback(), port, true);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(local_port(second[0].fd), port);
  EXPECT_NE(second[0].fd, first[0].fd);
  EXPECT_TRUE(is_listening(second[0].fd));
  // A socket without SO_REUSEPORT cannot join the group.
  EXPECT_EQ(bind_error(loopback(), port, false).first, std::errc::address_in_use);
  close_all(first);
  close_all(second);
}

TEST(BindListeners, ASharedSocketLetsNoReuseportMemberIn) {
  const auto shared = bind_listeners(loopback(), 0, false);
  EXPECT_EQ(bind_error(loopback(), local_port(shared[0].fd), true).first, std::errc::address_in_use);
  close_all(shared);
}

TEST(BindListeners, AnUnresolvableHostIsInvalidArgument) {
  Options options = loopback();
  options.host = "no-such-host.invalid";
  const auto [code, message] = bind_error(options, 0, false);
  EXPECT_EQ(code, std::errc::invalid_argument);
  EXPECT_NE(message.find("cannot resolve host 'no-such-host.invalid'"), std::string::npos) << message;
}

TEST(BindListeners, ABracketedIpv4LiteralIsUnbracketed) {
  // "[...]" is taken off before resolving (the IPv6 literal form); an IPv4 literal in
  // brackets then resolves like the bare one.
  Options options = loopback();
  options.host = "[127.0.0.1]";
  const auto sockets = bind_listeners(options, 0, false);
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].name.rfind("127.0.0.1:", 0), 0u);
  close_all(sockets);
}

TEST(LocalPort, IsZeroForWhatIsNotABoundSocket) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  EXPECT_EQ(local_port(pipe_fds[0]), 0);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(local_port(-1), 0);
}

// Puts fds at 3, 4, ... for the time of a test (sd_listen_fds(3) fixes them there),
// keeping whatever this process had there, restored afterwards.
class PassedFds {
 public:
  explicit PassedFds(const std::vector<int>& fds) {
    // Copies first: a given fd may itself be one of the targets.
    std::vector<int> copies;
    for (const int fd : fds) copies.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 200));
    for (std::size_t i = 0; i < fds.size(); ++i) {
      const int target = 3 + static_cast<int>(i);
      saved_.push_back(::fcntl(target, F_DUPFD_CLOEXEC, 100));  // -1 when nothing was there
      EXPECT_EQ(::dup2(copies[i], target), target);
      ::close(copies[i]);
    }
  }
  ~PassedFds() {
    for (std::size_t i = 0; i < saved_.size(); ++i) {
      const int target = 3 + static_cast<int>(i);
      if (saved_[i] >= 0) {
        ::dup2(saved_[i], target);
        ::close(saved_[i]);
      } else {
        ::close(target);
      }
    }
  }

 private:
  std::vector<int> saved_;
};

class InheritedListeners : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void clear() {
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
  }
  static void pass(const std::string& pid, const std::string& count, const char* names = nullptr) {
    ::setenv("LISTEN_PID", pid.c_str(), 1);
    ::setenv("LISTEN_FDS", count.c_str(), 1);
    if (names != nullptr) ::setenv("LISTEN_FDNAMES", names, 1);
  }
  static std::string self() { return std::to_string(::getpid()); }
};

TEST_F(InheritedListeners, NoneWhenNothingWasPassed) {
  EXPECT_FALSE(inherited_listeners().has_value());
}

TEST_F(InheritedListeners, TakesThePassedSocketsWithTheirNames) {
  const auto a = bind_listeners(loopback(), 0, false);
  const auto b = bind_listeners(loopback(), 0, false);
  // Taken before the fds move: a's or b's fd may be one of 3 and 4 themselves.
  const std::uint16_t a_port = local_port(a[0].fd);
  const std::uint16_t b_port = local_port(b[0].fd);
  // Passed sockets are inheritable: the receiver makes them close-on-exec.
  const int a_plain = ::dup(a[0].fd);
  const int b_plain = ::dup(b[0].fd);
  {
    PassedFds passed({a_plain, b_plain});
    pass(self(), "2", "web:admin");
    const auto sockets = inherited_listeners();
    ASSERT_TRUE(sockets.has_value());
    ASSERT_EQ(sockets->size(), 2u);
    EXPECT_EQ((*sockets)[0].fd, 3);
    EXPECT_EQ((*sockets)[0].name, "web");
    EXPECT_EQ((*sockets)[1].fd, 4);
    EXPECT_EQ((*sockets)[1].name, "admin");
    EXPECT_EQ(local_port(3), a_port);
    EXPECT_EQ(local_port(4), b_port);
    EXPECT_TRUE(is_cloexec(3));
    EXPECT_TRUE(is_cloexec(4));
    // Taken once: a program this process starts does not see them.
    EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
    EXPECT_FALSE(inherited_listeners().has_value());
  }
  ::close(a_plain);
  ::close(b_plain);
  close_all(a);
  close_all(b);
}

TEST_F(InheritedListeners, SocketsWithoutANameAreNamedByTheirFd) {
  const auto a = bind_listeners(loopback(), 0, false);
  const auto b = bind_listeners(loopback(), 0, false);
  {
    PassedFds passed({a[0].fd, b[0].fd});
    pass(self(), "2", "web");  // fewer names than sockets
    const auto sockets = inherited_listeners();
    ASSERT_TRUE(sockets.has_value());
    ASSERT_EQ(sockets->size(), 2u);
    EXPECT_EQ((*sockets)[0].name, "web");
    EXPECT_EQ((*sockets)[1].name, "fd 4");
  }
  {
    PassedFds passed({a[0].fd});
    pass(self(), "1");  // no LISTEN_FDNAMES
    const auto sockets = inherited_listeners();
    ASSERT_TRUE(sockets.has_value());
    EXPECT_EQ((*sockets)[0].name, "fd 3");
  }
  close_all(a);
  close_all(b);
}

TEST_F(InheritedListeners, SocketsForAnotherProcessAreLeftAlone) {
  const auto a = bind_listeners(loopback(), 0, false);
  PassedFds passed({a[0].fd});
  pass(std::to_string(::getpid() + 1), "1", "web");
  EXPECT_FALSE(inherited_listeners().has_value());
  // Meant for another process: the variables stay for it.
  EXPECT_STREQ(std::getenv("LISTEN_FDS"), "1");
  EXPECT_STREQ(std::getenv("LISTEN_FDNAMES"), "web");
  close_all(a);
}

TEST_F(InheritedListeners, BadCountsAreIgnored) {
  for (const char* count : {"0", "-1", "abc", "1x", "", "1025"}) {
    pass(self(), count);
    EXPECT_FALSE(inherited_listeners().has_value()) << "LISTEN_FDS=" << count;
  }
  pass("", "1");
  EXPECT_FALSE(inherited_listeners().has_value()) << "LISTEN_PID empty";
}

TEST_F(InheritedListeners, AFdThatIsNotAListeningSocketIsRefused) {
  const int unbound = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(unbound, 0);
  {
    PassedFds passed({unbound});
    pass(self(), "1");
    try {
      inherited_listeners();
      ADD_FAILURE() << "a socket that does not listen was taken";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::bad_file_descriptor);
      EXPECT_NE(std::string(e.what()).find("fd 3 is a listening socket, but it is not"), std::string::npos)
          << e.what();
    }
  }
  ::close(unbound);
}

}  // namespace
}  // namespace multinode::detail

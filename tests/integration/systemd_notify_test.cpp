// systemd's notification protocol as the master speaks it (docs/systemd.md): the
// test plays the service manager with a datagram socket of its own as
// NOTIFY_SOCKET and checks what arrives, in which order and from which process,
// for start, SIGHUP (rolling restart) and SIGTERM, and the watchdog pings.
#include "process.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace multinode::test {
namespace {

std::uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

struct Datagram {
  std::string text;
  pid_t sender = 0;  // from SCM_CREDENTIALS
  std::map<std::string, std::string> fields;
  bool has(const std::string& key) const { return fields.count(key) > 0; }
  // READY, RELOADING or STOPPING: the state change it announces; "" for STATUS or WATCHDOG only.
  std::string state() const {
    for (const char* key : {"READY", "RELOADING", "STOPPING"}) {
      if (has(key)) return key;
    }
    return "";
  }
};

// The service manager's end: a SOCK_DGRAM socket at a temporary path or an abstract
// name, with SO_PASSCRED so that every datagram says which process sent it.
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    const int on = 1;
    EXPECT_EQ(::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0) << std::strerror(errno);
    std::random_device random;
    const std::string unique = std::to_string(::getpid()) + "-" + std::to_string(random());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      name_ = "@multinode-notify-test-" + unique;
      std::memcpy(address.sun_path + 1, name_.data() + 1, name_.size() - 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      char dir[] = "/tmp/multinode-notify-XXXXXX";
      EXPECT_NE(::mkdtemp(dir), nullptr);
      dir_ = dir;
      name_ = dir_ + "/notify";
      std::memcpy(address.sun_path, name_.c_str(), name_.size() + 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length), 0) << std::strerror(errno);
  }
  ~NotifySocket() {
    ::close(fd_);
    if (!dir_.empty()) {
      ::unlink(name_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& name() const { return name_; }

  // The next datagram, or nullopt when none comes within timeout.
  std::optional<Datagram> receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buffer[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec io{buffer, sizeof buffer};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &message, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    Datagram datagram;
    datagram.text.assign(buffer, static_cast<std::size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred credentials{};
        std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
        datagram.sender = credentials.pid;
      }
    }
    std::istringstream lines(datagram.text);
    for (std::string line; std::getline(lines, line);) {
      const auto eq = line.find('=');
      EXPECT_NE(eq, std::string::npos) << "not KEY=value: " << line;
      if (eq != std::string::npos) datagram.fields[line.substr(0, eq)] = line.substr(eq + 1);
    }
    received_.push_back(datagram);
    return datagram;
  }

  // The next datagram announcing a state (skipping STATUS and WATCHDOG only ones).
  std::optional<Datagram> next_state(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto datagram = receive(left);
      if (!datagram) return std::nullopt;
      if (!datagram->state().empty()) return datagram;
    }
  }

  const std::vector<Datagram>& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string name_;
  std::vector<Datagram> received_;
};

std::string environment_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ChildProcess start_hello(const std::string& notify_socket, const std::string& watchdog_usec,
                         const std::string& nodes = "3", const std::string& watchdog_pid = "") {
  std::vector<std::string> env = {"NOTIFY_SOCKET=" + notify_socket, "WATCHDOG_USEC=" + watchdog_usec};
  // Absent unless given (the test may itself run under a service manager that set it).
  ::unsetenv("WATCHDOG_PID");
  if (!watchdog_pid.empty()) env.push_back("WATCHDOG_PID=" + watchdog_pid);
  return ChildProcess::start({example_path("hello"), "--port", std::to_string(free_port()), "--nodes", nodes,
                              "--host", "127.0.0.1", "--no-master-listen"},
                             env);
}

TEST(SystemdNotify, ReadyReloadingReadyStoppingInOrderFromTheMasterOnly) {
  NotifySocket manager(false);
  auto server = start_hello(manager.name(), "");
  const pid_t master = server.pid();

  // Start: READY=1 once all three workers have reported ready.
  const auto ready = manager.next_state(10s);
  ASSERT_TRUE(ready.has_value()) << server.error_output();
  EXPECT_EQ(ready->state(), "READY") << ready->text;
  EXPECT_EQ(ready->fields.at("READY"), "1");
  ASSERT_TRUE(ready->has("MAINPID")) << ready->text;
  EXPECT_EQ(ready->fields.at("MAINPID"), std::to_string(master));
  ASSERT_TRUE(ready->has("STATUS")) << ready->text;
  EXPECT_NE(ready->fields.at("STATUS").find("3 processes"), std::string::npos) << ready->text;
  EXPECT_TRUE(server.wait_for_log_count("is ready", 3, 0ms)) << server.error_output();

  // Neither the workers nor anything they start are given the master's socket.
  const auto workers = child_pids(master);
  EXPECT_EQ(workers.size(), 3u);
  for (const pid_t worker : workers) {
    const std::string env = environment_of(worker);
    EXPECT_EQ(env.find("NOTIFY_SOCKET="), std::string::npos) << "worker " << worker;
    EXPECT_EQ(env.find("WATCHDOG_USEC="), std::string::npos) << "worker " << worker;
  }

  // SIGHUP: RELOADING=1 stamped with CLOCK_MONOTONIC, then READY=1 once every
  // worker has been replaced (three more "is ready" lines by then).
  const std::uint64_t before = monotonic_usec();
  server.signal(SIGHUP);
  const auto reloading = manager.next_state(10s);
  const std::uint64_t after = monotonic_usec();
  ASSERT_TRUE(reloading.has_value()) << server.error_output();
  EXPECT_EQ(reloading->state(), "RELOADING") << reloading->text;
  ASSERT_TRUE(reloading->has("MONOTONIC_USEC")) << reloading->text;
  const std::uint64_t stamp = std::strtoull(reloading->fields.at("MONOTONIC_USEC").c_str(), nullptr, 10);
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);

  const auto reloaded = manager.next_state(10s);
  ASSERT_TRUE(reloaded.has_value()) << server.error_output();
  EXPECT_EQ(reloaded->state(), "READY") << reloaded->text;
  EXPECT_EQ(reloaded->fields.at("MAINPID"), std::to_string(master));
  EXPECT_TRUE(server.wait_for_log_count("is ready", 6, 0ms)) << server.error_output();

  // SIGTERM: STOPPING=1, then nothing more.
  server.signal(SIGTERM);
  const auto stopping = manager.next_state(10s);
  ASSERT_TRUE(stopping.has_value()) << server.error_output();
  EXPECT_EQ(stopping->state(), "STOPPING") << stopping->text;
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
  while (manager.receive(100ms)) {
  }

  std::vector<std::string> states;
  for (const auto& datagram : manager.received()) {
    EXPECT_EQ(datagram.sender, master) << "sent by another process: " << datagram.text;
    EXPECT_FALSE(datagram.has("WATCHDOG")) << "no watchdog was asked for";
    if (!datagram.state().empty()) states.push_back(datagram.state());
  }
  EXPECT_EQ(states, (std::vector<std::string>{"READY", "RELOADING", "READY", "STOPPING"}));
  // The rolling restart's progress shows in STATUS= lines between RELOADING and READY.
  bool progress = false;
  for (const auto& datagram : manager.received()) {
    progress = progress ||
               (datagram.has("STATUS") && datagram.fields.at("STATUS") == "rolling restart: 3 of 3 replaced");
  }
  EXPECT_TRUE(progress);
}

TEST(SystemdNotify, RollingRestartCountsOnlyWorkersWhenTheMasterServesOnItsOwnReuseportSocket) {
  // With reuseport the master's slot 0 has sockets of its own but no worker: SIGHUP
  // replaces the one worker and starts nothing in slot 0.
  NotifySocket manager(false);
  ::unsetenv("WATCHDOG_PID");
  auto server = ChildProcess::start({test_program_path("test_server"), "--nodes", "2", "--reuseport"},
                                    {"NOTIFY_SOCKET=" + manager.name(), "WATCHDOG_USEC="});
  const auto ready = manager.next_state(10s);
  ASSERT_TRUE(ready.has_value()) << server.error_output();
  EXPECT_EQ(ready->fields.at("STATUS").substr(ready->fields.at("STATUS").size() - 11), "2 processes");
  server.signal(SIGHUP);
  const auto reloading = manager.next_state(10s);
  ASSERT_TRUE(reloading.has_value()) << server.error_output();
  EXPECT_EQ(reloading->fields.at("STATUS"), "rolling restart: 0 of 1 replaced");
  const auto reloaded = manager.next_state(10s);
  ASSERT_TRUE(reloaded.has_value()) << server.error_output();
  EXPECT_EQ(reloaded->state(), "READY");
  EXPECT_EQ(reloaded->fields.at("STATUS").substr(reloaded->fields.at("STATUS").size() - 11), "2 processes")
      << reloaded->text;
  std::this_thread::sleep_for(300ms);  // the old worker drains and exits
  EXPECT_EQ(child_pids(server.pid()).size(), 1u) << server.error_output();
  EXPECT_EQ(server.error_output().find("slot 0,"), std::string::npos) << server.error_output();
}

TEST(SystemdNotify, WatchdogPingsAtHalfWatchdogUsec) {
  NotifySocket manager(false);
  auto server = start_hello(manager.name(), "200000");  // 200 ms: a ping about every 100 ms
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  int pings = 0;
  while (pings < 8 && std::chrono::steady_clock::now() < deadline) {
    const auto datagram = manager.receive(500ms);
    if (datagram && datagram->text == "WATCHDOG=1") ++pings;
  }
  EXPECT_GE(pings, 8) << server.error_output();
  for (const auto& datagram : manager.received()) EXPECT_EQ(datagram.sender, server.pid()) << datagram.text;
}

TEST(SystemdNotify, WatchdogForAnotherPidIsNotPinged) {
  NotifySocket manager(false);
  // WATCHDOG_PID names the process the watchdog is for; pid 1 is not the master.
  auto server = start_hello(manager.name(), "200000", "1", "1");
  const auto ready = manager.next_state(10s);
  ASSERT_TRUE(ready.has_value()) << server.error_output();
  EXPECT_EQ(ready->state(), "READY");
  while (manager.receive(600ms)) {
  }
  for (const auto& datagram : manager.received()) EXPECT_FALSE(datagram.has("WATCHDOG")) << datagram.text;
}

TEST(SystemdNotify, AMasterServingAloneIsReadyAtOnce) {
  NotifySocket manager(false);
  ::unsetenv("WATCHDOG_PID");
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start(
      {example_path("hello"), "--port", std::to_string(port), "--nodes", "1", "--host", "127.0.0.1"},
      {"NOTIFY_SOCKET=" + manager.name(), "WATCHDOG_USEC="});
  const auto ready = manager.next_state(10s);
  ASSERT_TRUE(ready.has_value()) << server.error_output();
  EXPECT_EQ(ready->state(), "READY") << ready->text;
  EXPECT_EQ(ready->fields.at("STATUS"), "serving on 127.0.0.1:" + std::to_string(port) + " with 1 process");
  EXPECT_TRUE(child_pids(server.pid()).empty());
}

TEST(SystemdNotify, AbstractSocketName) {
  NotifySocket manager(true);
  ASSERT_EQ(manager.name().front(), '@');
  auto server = start_hello(manager.name(), "", "2");
  const auto ready = manager.next_state(10s);
  ASSERT_TRUE(ready.has_value()) << server.error_output();
  EXPECT_EQ(ready->state(), "READY") << ready->text;
  EXPECT_EQ(ready->sender, server.pid());
  server.signal(SIGTERM);
  const auto stopping = manager.next_state(10s);
  ASSERT_TRUE(stopping.has_value()) << server.error_output();
  EXPECT_EQ(stopping->state(), "STOPPING") << stopping->text;
  EXPECT_TRUE(server.wait(10s).has_value());
}

TEST(SystemdNotify, UnreachableSocketIsLoggedOnceAndServingGoesOn) {
  // A NOTIFY_SOCKET nobody listens on: the master warns once and serves anyway.
  char dir[] = "/tmp/multinode-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  ::unsetenv("WATCHDOG_PID");
  const std::uint16_t port = free_port();
  auto server =
      ChildProcess::start({example_path("hello"), "--port", std::to_string(port), "--nodes", "2", "--host",
                           "127.0.0.1", "--no-master-listen"},
                          {"NOTIFY_SOCKET=" + std::string(dir) + "/nobody", "WATCHDOG_USEC=100000"});
  EXPECT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  std::this_thread::sleep_for(300ms);  // a few watchdog pings fail too
  const int fd = wait_for_connect(port, 5s);
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
  const std::string log = server.error_output();
  std::size_t warnings = 0;
  for (auto at = log.find("cannot notify systemd"); at != std::string::npos;
       at = log.find("cannot notify systemd", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 1u) << log;
  EXPECT_FALSE(server.exited());
  server.signal(SIGTERM);
  EXPECT_TRUE(server.wait(10s).has_value());
  ::rmdir(dir);
}

}  // namespace
}  // namespace multinode::test

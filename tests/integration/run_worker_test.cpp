// A library program as a worker of `multinode run` (tests/programs/run_node.cpp):
// it serves the socket it was passed in its one process (no fork), says READY=1
// and WATCHDOG=1 on NOTIFY_SOCKET, and joins the mesh of docs/protocol.md
// ("The mesh for workers of `multinode run`"). The broker is played by the test
// the way the supervisor behaves: it makes the directory, listens on
// supervisor.sock, checks each join record, sends the peer and master records,
// and closes connections. Checked: the frames every pair exchanges (text,
// binary, JSON), an ended stream when a member is killed and the replacement's
// new one, the master role from MULTINODE_MASTER and from a `master` record,
// hellos refused, SIGTERM finishing the request in hand and exiting 0, the end
// of the supervisor's connection stopping the worker, the bridge variables; and
// the same program and examples/run/hello.cpp under the real `multinode run`.
#include "process.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

namespace json = boost::json;
using clock = std::chrono::steady_clock;

constexpr std::uint16_t type_ready = 1, type_peer = 3, type_join = 8, type_master = 9;

struct Record {
  std::uint16_t type = 0;
  std::uint32_t id = 0;
  std::uint32_t slot = 0;
  std::uint64_t value = 0;
  bool reserved_zero = true;
};

std::array<unsigned char, 24> encode(const Record& r) {
  std::array<unsigned char, 24> out{};
  out[0] = static_cast<unsigned char>(r.type);
  out[1] = static_cast<unsigned char>(r.type >> 8);
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<unsigned char>(r.id >> (8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<unsigned char>(r.slot >> (8 * i));
  for (int i = 0; i < 8; ++i) out[16 + i] = static_cast<unsigned char>(r.value >> (8 * i));
  return out;
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

// Reads exactly n bytes within the timeout; nullopt on end of stream, error or timeout.
std::optional<std::string> read_exactly(int fd, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::string out;
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0 || !wait_readable(fd, left)) return std::nullopt;
    char buffer[256];
    const ssize_t got = ::recv(fd, buffer, std::min(sizeof buffer, n - out.size()), 0);
    if (got <= 0) return std::nullopt;
    out.append(buffer, static_cast<std::size_t>(got));
  }
  return out;
}

std::optional<Record> read_record(int fd, std::chrono::milliseconds timeout = 10s) {
  const auto bytes = read_exactly(fd, 24, timeout);
  if (!bytes) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes->data());
  Record r;
  r.type = static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  for (int i = 3; i >= 0; --i) r.id = (r.id << 8) | p[4 + i];
  for (int i = 3; i >= 0; --i) r.slot = (r.slot << 8) | p[8 + i];
  for (int i = 7; i >= 0; --i) r.value = (r.value << 8) | p[16 + i];
  r.reserved_zero = p[2] == 0 && p[3] == 0 && p[12] == 0 && p[13] == 0 && p[14] == 0 && p[15] == 0;
  return r;
}

void send_record(int fd, const Record& r) {
  const auto bytes = encode(r);
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), 24);
}

std::string hello(std::uint32_t id, std::uint32_t slot) {
  std::string out{'\x04', '\0', '\0', '\0', '\x09', '\0', '\0', '\0', '\x02'};
  for (int i = 0; i < 4; ++i) out += static_cast<char>(id >> (8 * i));
  for (int i = 0; i < 4; ++i) out += static_cast<char>(slot >> (8 * i));
  return out;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof address.sun_path - 1));
  return address;
}

int unix_listen(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = unix_address(path);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int unix_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = unix_address(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A loopback TCP listener of the test's own, passed to one worker as its fd 3.
int tcp_listen(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(address.sin_port);
  return fd;
}

// GET path on port: the body, or "" when there was no 200 answer.
std::string get(std::uint16_t port, const std::string& path = "/") {
  const int fd = connect_tcp(port, 5s);
  if (fd < 0) return "";
  write_all(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  const std::string reply = read_until_closed(fd, 10s);
  ::close(fd);
  const auto body = reply.find("\r\n\r\n");
  if (reply.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "";
  return reply.substr(body + 4);
}

std::size_t count(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

enum class From { out, err };
bool wait_for_count(const ChildProcess& child, std::string_view needle, std::size_t n,
                    std::chrono::milliseconds timeout = 10s, From from = From::out) {
  auto text = [&] { return from == From::out ? child.output() : child.error_output(); };
  const auto deadline = clock::now() + timeout;
  while (clock::now() < deadline) {
    if (count(text(), needle) >= n) return true;
    std::this_thread::sleep_for(10ms);
  }
  return count(text(), needle) >= n;
}

int exit_code(ChildProcess& child, std::chrono::milliseconds timeout = 15s) {
  const auto status = child.wait(timeout);
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

// The test as the supervisor of `multinode run`: the mesh directory, supervisor.sock,
// and per worker a TCP listener and a NOTIFY_SOCKET of its own.
class RunWorker : public ::testing::Test {
 protected:
  struct Worker {
    std::uint32_t id = 0;
    std::uint32_t slot = 0;
    std::uint16_t port = 0;
    int notify = -1;      // the datagram socket its NOTIFY_SOCKET names
    int connection = -1;  // its supervisor.sock connection, once joined
    std::optional<ChildProcess> process;
  };

  void SetUp() override {
    ASSERT_EQ(::chmod(mesh_.path().c_str(), 0700), 0);
    broker_ = unix_listen(mesh_.file("supervisor.sock"));
    ASSERT_GE(broker_, 0) << std::strerror(errno);
  }

  void TearDown() override {
    for (auto& [id, w] : workers_) {
      if (w.process) w.process->kill_all();
      if (w.notify >= 0) ::close(w.notify);
      if (w.connection >= 0) ::close(w.connection);
    }
    if (broker_ >= 0) ::close(broker_);
  }

  // Starts node id in slot with the env of a `multinode run` worker; with_mesh adds MULTINODE_MESH.
  Worker& start(std::uint32_t id, std::uint32_t slot, bool master, bool with_mesh = true,
                const std::vector<std::string>& args = {}, const std::string& mesh_dir = "",
                const std::vector<std::string>& more_env = {}) {
    Worker& w = workers_[id];
    w.id = id;
    w.slot = slot;
    const int listener = tcp_listen(w.port);
    EXPECT_GE(listener, 0);
    w.notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const std::string notify_name =
        "multinode-test-notify/" + std::to_string(::getpid()) + "/" + mesh_.path() + "/" + std::to_string(id);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, notify_name.data(), notify_name.size());
    EXPECT_EQ(::bind(w.notify, reinterpret_cast<const sockaddr*>(&address),
                     static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + notify_name.size())),
              0);
    std::vector<std::string> env = {"MULTINODE_ID=" + std::to_string(id),
                                    "MULTINODE_SLOT=" + std::to_string(slot),
                                    "MULTINODE_NODES=3",
                                    "LISTEN_FDS=1",
                                    "LISTEN_FDNAMES=multinode",
                                    "NOTIFY_SOCKET=@" + notify_name,
                                    "WATCHDOG_USEC=200000"};
    if (with_mesh) env.push_back("MULTINODE_MESH=" + (mesh_dir.empty() ? mesh_.path() : mesh_dir));
    if (master) env.push_back("MULTINODE_MASTER=1");
    env.insert(env.end(), more_env.begin(), more_env.end());
    // LISTEN_PID and WATCHDOG_PID name the program itself: sh's $$ is the pid exec keeps.
    std::string command = "LISTEN_PID=$$ WATCHDOG_PID=$$ exec " + test_program_path("run_node");
    for (const auto& a : args) command += " " + a;
    w.process.emplace(ChildProcess::start({"/bin/sh", "-c", command}, env, {listener}));
    ::close(listener);
    return w;
  }

  // Accepts the worker's connection and checks its join; then sends it a peer record
  // for every member in `peers`.
  void join(Worker& w, const std::vector<std::uint32_t>& peers) {
    ASSERT_TRUE(wait_readable(broker_, 10s)) << "no connection to supervisor.sock\n"
                                             << w.process->error_output();
    w.connection = ::accept4(broker_, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(w.connection, 0);
    const auto record = read_record(w.connection);
    ASSERT_TRUE(record);
    EXPECT_EQ(record->type, type_join);
    EXPECT_EQ(record->id, w.id);
    EXPECT_EQ(record->slot, w.slot);
    EXPECT_EQ(record->value, static_cast<std::uint64_t>(w.process->pid()));
    EXPECT_TRUE(record->reserved_zero);
    // Sent once it listens on <id>.sock.
    struct stat info {};
    ASSERT_EQ(::stat(mesh_.file(std::to_string(w.id) + ".sock").c_str(), &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    for (const auto peer : peers)
      send_record(w.connection, Record{type_peer, peer, workers_.at(peer).slot, 0});
  }

  // The datagrams on the worker's NOTIFY_SOCKET within the timeout, until `until` is among them.
  std::vector<std::string> notifications(const Worker& w, std::string_view until, std::size_t times,
                                         std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> got;
    const auto deadline = clock::now() + timeout;
    std::size_t seen = 0;
    while (seen < times && clock::now() < deadline) {
      if (!wait_readable(w.notify, 100ms)) continue;
      char buffer[4096];
      const ssize_t n = ::recv(w.notify, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      got.emplace_back(buffer, static_cast<std::size_t>(n));
      if (got.back().find(until) != std::string::npos) ++seen;
    }
    return got;
  }

  TempDir mesh_{"mn-mesh"};
  int broker_ = -1;
  std::map<std::uint32_t, Worker> workers_;
};

bool has(const std::vector<std::string>& messages, std::string_view needle) {
  for (const auto& m : messages) {
    if (m.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_F(RunWorker, JoinsTheMeshExchangesFramesAndTakesOverTheMasterRole) {
  Worker& one = start(1, 1, true);
  join(one, {});
  Worker& two = start(2, 2, false);
  join(two, {1});
  Worker& three = start(3, 3, false);
  join(three, {1, 2});

  // Every pair: a stream each way, three messages verified at each end.
  for (auto* w : {&one, &two, &three}) {
    ASSERT_TRUE(wait_for_count(*w->process, "verified ", 6))
        << w->process->output() << w->process->error_output();
    for (auto* other : {&one, &two, &three}) {
      if (other == w) continue;
      const std::string from = " from " + std::to_string(other->id) + "\n";
      for (const char* kind : {"verified text", "verified binary", "verified json"})
        EXPECT_EQ(count(w->process->output(), kind + from), 1u) << w->id << w->process->output();
      EXPECT_EQ(count(w->process->output(),
                      "peer " + std::to_string(other->id) + " slot " + std::to_string(other->slot) + "\n"),
                1u);
    }
    EXPECT_EQ(count(w->process->output(), "unexpected"), 0u);
    // Ready and beating to its NOTIFY_SOCKET; its HTTP socket served in this one process.
    const auto notes = notifications(*w, "WATCHDOG=1", 2);
    EXPECT_TRUE(has(notes, "READY=1\nMAINPID=" + std::to_string(w->process->pid()))) << w->id;
    EXPECT_GE(std::count(notes.begin(), notes.end(), "WATCHDOG=1"), 2) << w->id;
    EXPECT_EQ(get(w->port), "node " + std::to_string(w->id) + " pid " + std::to_string(w->process->pid()) +
                                " master " + (w == &one ? "1" : "0") + "\n");
    EXPECT_TRUE(child_pids(w->process->pid()).empty())
        << "a worker of multinode run forks no worker of its own";
  }
  EXPECT_NE(one.process->error_output().find("holds the master role (MULTINODE_MASTER=1)"),
            std::string::npos);

  // The holder dies: the others see its stream end; the supervisor hands the role to 2.
  one.process->signal(SIGKILL);
  ASSERT_TRUE(one.process->wait(10s));
  EXPECT_TRUE(wait_for_count(*two.process, "ended 1\n", 1)) << two.process->output();
  EXPECT_TRUE(wait_for_count(*three.process, "ended 1\n", 1)) << three.process->output();
  EXPECT_NE(get(two.port).find("master 0"), std::string::npos);
  send_record(two.connection, Record{type_master, 0, 0, 1});
  const auto deadline = clock::now() + 10s;
  while (get(two.port).find("master 1") == std::string::npos && clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(get(two.port).find("master 1"), std::string::npos);
  EXPECT_NE(get(three.port).find("master 0"), std::string::npos);

  // Its replacement (a new id, the same slot) connects to every survivor.
  ::unlink(mesh_.file("1.sock").c_str());  // the supervisor's part
  Worker& four = start(4, 1, false);
  join(four, {2, 3});
  ASSERT_TRUE(wait_for_count(*four.process, "verified ", 6)) << four.process->output();
  EXPECT_TRUE(wait_for_count(*two.process, "verified json from 4\n", 1));
  EXPECT_TRUE(wait_for_count(*three.process, "verified json from 4\n", 1));
  EXPECT_EQ(count(four.process->output(), "peer 2 slot 2\n"), 1u);

  // The end of the supervisor's connection stops a worker: status 0; SIGTERM too.
  ::close(three.connection);
  three.connection = -1;
  EXPECT_EQ(exit_code(*three.process), 0) << three.process->error_output();
  EXPECT_NE(three.process->error_output().find("the supervisor went away"), std::string::npos);
  EXPECT_TRUE(wait_for_count(*two.process, "ended 3\n", 1));
  EXPECT_TRUE(wait_for_count(*four.process, "ended 3\n", 1));
  for (auto* w : {&two, &four}) {
    w->process->signal(SIGTERM);
    EXPECT_EQ(exit_code(*w->process), 0) << w->process->error_output();
    EXPECT_NE(w->process->output().find("stopped\n"), std::string::npos);
    // Its socket file is gone with it.
    EXPECT_NE(::access(mesh_.file(std::to_string(w->id) + ".sock").c_str(), F_OK), 0);
  }
}

TEST_F(RunWorker, TakesOnlyAHelloAsTheFirstBytesOfAConnection) {
  Worker& one = start(1, 1, false);
  join(one, {});
  const std::string path = mesh_.file("1.sock");

  // Not a hello: closed at once.
  const int junk = unix_connect(path);
  ASSERT_GE(junk, 0);
  write_all(junk, std::string(17, 'x'));
  bool closed = false;
  read_until_closed(junk, 5s, &closed);
  EXPECT_TRUE(closed);
  ::close(junk);

  // Nothing sent: closed after the hello timeout (5 s).
  const int silent = unix_connect(path);
  ASSERT_GE(silent, 0);
  closed = false;
  read_until_closed(silent, 10s, &closed);
  EXPECT_TRUE(closed);
  ::close(silent);
  EXPECT_EQ(count(one.process->output(), "peer "), 0u);

  // A hello, then frames right behind it: the user gets a stream from node 9, and
  // what follows the hello is its first frame (nothing of it was eaten).
  const int member = unix_connect(path);
  ASSERT_GE(member, 0);
  const std::string text = "hello from node 9 to node 1 \xe2\x9c\x93";
  std::string frame{'\x01', '\0', '\0', '\0'};
  for (int i = 0; i < 4; ++i) frame += static_cast<char>(text.size() >> (8 * i));
  write_all(member, hello(9, 7) + frame + text);
  EXPECT_TRUE(wait_for_count(*one.process, "peer 9 slot 7\n", 1)) << one.process->output();
  EXPECT_TRUE(wait_for_count(*one.process, "verified text from 9\n", 1)) << one.process->output();
  // What the worker sent us: its three frames, and no hello (the connecting side sends it).
  const auto first = read_exactly(member, 1, 5s);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)[0], '\x01');  // a text frame
  ::close(member);
  EXPECT_TRUE(wait_for_count(*one.process, "ended 9\n", 1));

  one.process->signal(SIGINT);
  EXPECT_EQ(exit_code(*one.process), 0);
}

TEST_F(RunWorker, SigtermFinishesTheRequestInHandAndExitsZero) {
  Worker& one = start(1, 1, false);
  join(one, {});
  ASSERT_FALSE(get(one.port).empty());
  const int fd = connect_tcp(one.port, 5s);
  ASSERT_GE(fd, 0);
  write_all(fd, "GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  std::this_thread::sleep_for(100ms);  // the request is in hand (not a timing assertion)
  one.process->signal(SIGTERM);
  const std::string reply = read_until_closed(fd, 10s);
  ::close(fd);
  EXPECT_NE(reply.find("slow done"), std::string::npos) << reply;
  EXPECT_EQ(exit_code(*one.process), 0) << one.process->error_output();
  // It told the supervisor nothing more than its join: the connection just ends.
  EXPECT_FALSE(read_record(one.connection, 5s));
}

TEST_F(RunWorker, ServesWithoutAMeshAndRefusesOneItCannotReach) {
  // A supervisor without the broker (main's multinode run today): serves, says ready.
  Worker& alone = start(1, 1, true, false);
  const auto notes = notifications(alone, "READY=1", 1);
  EXPECT_TRUE(has(notes, "READY=1"));
  EXPECT_NE(get(alone.port).find("node 1 pid " + std::to_string(alone.process->pid()) + " master 1"),
            std::string::npos);
  EXPECT_TRUE(child_pids(alone.process->pid()).empty());
  alone.process->signal(SIGTERM);
  EXPECT_EQ(exit_code(*alone.process), 0);

  // A MULTINODE_MESH with nobody on supervisor.sock: listen() fails and says so.
  TempDir empty{"mn-mesh-empty"};
  Worker& lost = start(2, 2, false, true, {}, empty.path());
  EXPECT_EQ(exit_code(*lost.process), 1);
  EXPECT_NE(lost.process->error_output().find("supervisor.sock"), std::string::npos)
      << lost.process->error_output();
}

// MULTINODE_BRIDGE, _PREFIX and _HOST_ID become Options::bridge, bridge_prefix and the
// host id (the program sets none): two workers on prefix p1: hear each other as one
// host (777); two others on p2: hear only each other.
TEST_F(RunWorker, TakesTheBridgeFromTheEnvironment) {
  const std::uint16_t redis_port = free_port();
  ChildProcess redis = ChildProcess::start({"/usr/bin/redis-server", "--save", "", "--appendonly", "no",
                                            "--port", std::to_string(redis_port), "--bind", "127.0.0.1"});
  const int probe = wait_for_connect(redis_port, 10s);
  ASSERT_GE(probe, 0);
  ::close(probe);
  const std::string url = "MULTINODE_BRIDGE=redis://127.0.0.1:" + std::to_string(redis_port);
  Worker& one =
      start(1, 1, false, false, {}, "", {url, "MULTINODE_BRIDGE_PREFIX=p1:", "MULTINODE_BRIDGE_HOST_ID=777"});
  Worker& two =
      start(2, 2, false, false, {}, "", {url, "MULTINODE_BRIDGE_PREFIX=p1:", "MULTINODE_BRIDGE_HOST_ID=777"});
  Worker& other =
      start(3, 3, false, false, {}, "", {url, "MULTINODE_BRIDGE_PREFIX=p2:", "MULTINODE_BRIDGE_HOST_ID=888"});
  Worker& fellow =
      start(5, 5, false, false, {}, "", {url, "MULTINODE_BRIDGE_PREFIX=p2:", "MULTINODE_BRIDGE_HOST_ID=999"});
  const std::string two_to_one = "received 'bridged from 2' host 777 node 2\n";
  EXPECT_TRUE(wait_for_count(*one.process, two_to_one, 2))
      << one.process->output() << one.process->error_output();
  EXPECT_TRUE(wait_for_count(*two.process, "received 'bridged from 1' host 777 node 1\n", 2))
      << two.process->output();
  // The p2: pair hears each other, so 3 is subscribed; then 1 and 2 publish twice more.
  EXPECT_TRUE(wait_for_count(*other.process, "received 'bridged from 5' host 999 node 5\n", 2))
      << other.process->output() << other.process->error_output();
  const std::size_t so_far = count(one.process->output(), two_to_one);
  EXPECT_TRUE(wait_for_count(*one.process, two_to_one, so_far + 2));
  EXPECT_NE(one.process->output().find("master 0 host 777\n"), std::string::npos);
  EXPECT_NE(other.process->output().find("master 0 host 888\n"), std::string::npos);
  EXPECT_EQ(count(other.process->output(), "from 1"), 0u) << other.process->output();
  EXPECT_EQ(count(other.process->output(), "from 2"), 0u) << other.process->output();
  EXPECT_EQ(count(one.process->output(), "from 3"), 0u);
  EXPECT_EQ(count(one.process->output(), "from 5"), 0u);
  for (auto* w : {&one, &two, &other, &fellow}) {
    w->process->signal(SIGTERM);
    EXPECT_EQ(exit_code(*w->process), 0) << w->process->error_output();
  }

  // A URL that is not one: listen() fails and names the variable's value.
  Worker& bad = start(4, 4, false, false, {}, "", {"MULTINODE_BRIDGE=http://nowhere"});
  EXPECT_EQ(exit_code(*bad.process), 1);
  EXPECT_NE(bad.process->error_output().find("Options::bridge 'http://nowhere'"), std::string::npos)
      << bad.process->error_output();
}

// The same program under the real supervisor of this branch's main (no broker yet):
// one process per worker serving the passed socket, ready by READY=1, beating
// WATCHDOG=1, shown by status, stopped with status 0.
TEST(RunWorkerUnderMultinodeRun, ServesOneProcessPerWorkerAndKeepsItsHeartbeat) {
  TempDir dir{"mn-run"};
  const std::uint16_t port = free_port();
  const std::string control = dir.file("control.sock");
  ChildProcess supervisor = ChildProcess::start(
      {MULTINODE_COMMAND, "run", "-n", "2", "-p", std::to_string(port), "--host", "127.0.0.1", "--control",
       control, "--ready", "notify", "--heartbeat-timeout", "1000", "--", test_program_path("run_node")});
  auto status = [&] {
    ChildProcess client = ChildProcess::start({MULTINODE_COMMAND, "status", "--json", "--control", control});
    const auto code = client.wait(15s);
    boost::system::error_code error;
    json::value v = json::parse(client.output(), error);
    return code && !error && v.is_object() ? v.as_object() : json::object{};
  };
  // Both ready (their READY=1), each its own pid.
  std::map<std::int64_t, std::int64_t> ready;  // id -> pid
  const auto deadline = clock::now() + 20s;
  while (ready.size() < 2 && clock::now() < deadline) {
    ready.clear();
    const auto s = status();
    if (const auto* workers = s.if_contains("workers")) {
      for (const auto& w : workers->as_array()) {
        if (w.at("state").as_string() == "ready")
          ready[w.at("id").to_number<std::int64_t>()] = w.at("pid").to_number<std::int64_t>();
      }
    }
    if (ready.size() < 2) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(ready.size(), 2u) << supervisor.error_output();
  std::set<std::string> answered;
  for (int i = 0; i < 200 && answered.size() < 2; ++i) {
    const std::string body = get(port);
    if (!body.empty()) answered.insert(body.substr(0, body.find(" master")));
  }
  std::set<std::string> expected;
  for (const auto& [id, pid] : ready) {
    expected.insert("node " + std::to_string(id) + " pid " + std::to_string(pid));
    EXPECT_TRUE(child_pids(static_cast<pid_t>(pid)).empty()) << "a worker forks no worker of its own";
  }
  EXPECT_EQ(answered, expected);
  // Past two heartbeat timeouts: still the same workers (their WATCHDOG=1 keeps them).
  std::this_thread::sleep_for(2500ms);
  std::map<std::int64_t, std::int64_t> later;
  const auto after = status();
  if (const auto* workers = after.if_contains("workers")) {
    for (const auto& w : workers->as_array())
      later[w.at("id").to_number<std::int64_t>()] = w.at("pid").to_number<std::int64_t>();
  }
  EXPECT_EQ(later, ready) << supervisor.error_output();
  supervisor.signal(SIGTERM);
  const auto code = supervisor.wait(20s);
  ASSERT_TRUE(code);
  EXPECT_TRUE(WIFEXITED(*code) && WEXITSTATUS(*code) == 0) << supervisor.error_output();
  for (const auto& [id, pid] : ready) EXPECT_TRUE(wait_process_gone(static_cast<pid_t>(pid), 5s));
}

// examples/run/hello.cpp as docs/cli.md starts it: each worker answers as itself.
TEST(RunWorkerUnderMultinodeRun, TheRunHelloExampleServesFromEachWorker) {
  TempDir dir{"mn-run-hello"};
  const std::uint16_t port = free_port();
  ChildProcess supervisor = ChildProcess::start({MULTINODE_COMMAND, "run", "-n", "2", "-p",
                                                 std::to_string(port), "--host", "127.0.0.1", "--control",
                                                 dir.file("control.sock"), "--", example_path("run_hello")});
  std::set<std::string> greetings;
  const auto deadline = clock::now() + 20s;
  while (greetings.size() < 2 && clock::now() < deadline) {
    const std::string body = get(port);
    if (!body.empty()) greetings.insert(body);
    if (body.empty()) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(greetings.size(), 2u) << supervisor.output() << supervisor.error_output();
  for (const auto& greeting : greetings) {
    EXPECT_TRUE(greeting.rfind("Hello from node ", 0) == 0 && greeting.find(", C++)\n") != std::string::npos)
        << greeting;
  }
  EXPECT_TRUE(wait_for_count(supervisor, " serving", 2)) << supervisor.output();
  supervisor.signal(SIGTERM);
  EXPECT_EQ(exit_code(supervisor, 20s), 0) << supervisor.error_output();
}

// Under a `multinode run` that brokers the mesh (MULTINODE_MESH set; skipped by a
// command without the broker): three C++ workers mesh, every pair exchanges its
// frames; the master role's holder killed, the others' streams to it end, the
// role goes to the oldest survivor and the replacement meshes with everyone.
TEST(RunWorkerUnderMultinodeRun, MeshesThroughTheBrokerOfTheCommand) {
  TempDir dir{"mn-run-mesh"};
  const std::uint16_t port = free_port();
  const std::string control = dir.file("control.sock");
  // sh says whether the supervisor gave a mesh, then becomes the program (same pid: LISTEN_PID holds).
  ChildProcess supervisor =
      ChildProcess::start({MULTINODE_COMMAND, "run", "-n", "3", "-p", std::to_string(port), "--host",
                           "127.0.0.1", "--control", control, "--ready", "notify", "--", "/bin/sh", "-c",
                           "echo mesh=${MULTINODE_MESH:+given}; exec " + test_program_path("run_node")});
  ASSERT_TRUE(wait_for_count(supervisor, "] mesh=", 3)) << supervisor.output() << supervisor.error_output();
  if (count(supervisor.output(), "] mesh=given\n") == 0) {
    supervisor.signal(SIGTERM);
    EXPECT_EQ(exit_code(supervisor, 20s), 0);
    GTEST_SKIP() << "this multinode run does not broker the mesh (no MULTINODE_MESH)";
  }
  // 3 workers: each verifies 3 messages from each of 2 peers.
  ASSERT_TRUE(wait_for_count(supervisor, "] verified ", 18, 20s))
      << supervisor.output() << supervisor.error_output();
  EXPECT_EQ(count(supervisor.output(), "unexpected"), 0u);
  EXPECT_EQ(count(supervisor.output(), " master 1 host "), 1u) << supervisor.output();  // one holder at start
  // Kill the holder: the one whose start line says master 1.
  const std::string out = supervisor.output();
  const auto line = out.find(" master 1 host ");
  const auto start = out.rfind("[worker ", line);
  const auto pid_at = out.find(" pid ", start) + 5;
  const pid_t holder = static_cast<pid_t>(std::atol(out.c_str() + pid_at));
  const std::string holder_id = out.substr(start + 8, out.find(' ', start + 8) - start - 8);
  ASSERT_GT(holder, 0);
  ::kill(holder, SIGKILL);
  EXPECT_TRUE(wait_for_count(supervisor, "] ended " + holder_id + "\n", 2)) << supervisor.output();
  EXPECT_TRUE(wait_for_count(supervisor, "holds the master role from now on", 1, 10s, From::err))
      << supervisor.error_output();
  // The replacement (id 4) meshes with both survivors: 6 more verified at each end.
  EXPECT_TRUE(wait_for_count(supervisor, "] verified ", 18 + 12, 20s)) << supervisor.output();
  EXPECT_EQ(count(supervisor.output(), "] verified json from 4\n"), 2u) << supervisor.output();
  supervisor.signal(SIGTERM);
  EXPECT_EQ(exit_code(supervisor, 20s), 0) << supervisor.error_output();
}

}  // namespace
}  // namespace multinode::test

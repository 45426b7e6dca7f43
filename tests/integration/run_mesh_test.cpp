// The supervisor's side of the mesh of `multinode run` workers (docs/protocol.md,
// "The mesh for workers of `multinode run`"), spoken to in raw bytes: the private
// directory and the environment it is passed in, the refusals on supervisor.sock
// (garbage, a first record that is no join, a wrong id or slot, a second join, a
// record a member may not send, a connection that never joins), the peer records
// of a join, and the master role handed over when its holder is killed. The
// workers are Debian's python3 running a script that prints its environment and
// serves without joining, so that the test itself joins in their name.
#include "process.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

constexpr const char* python = "/usr/bin/python3";

constexpr const char* worker_script = R"PY(
import os, signal, socket, sys, time
print("MESHENV id=%s slot=%s pid=%d master=%s mesh=%s" % (
    os.environ.get("MULTINODE_ID"), os.environ.get("MULTINODE_SLOT"), os.getpid(),
    os.environ.get("MULTINODE_MASTER", "-"), os.environ.get("MULTINODE_MESH", "-")), flush=True)
print("BRIDGE url=%s prefix=%s host=%s" % tuple(os.environ.get("MULTINODE_BRIDGE" + k, "-")
                                                for k in ("", "_PREFIX", "_HOST_ID")), flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
)PY";

struct WorkerEnv {
  unsigned id = 0, slot = 0;
  pid_t pid = 0;
  std::string master, mesh;
};

std::vector<WorkerEnv> worker_envs(const std::string& output) {
  std::vector<WorkerEnv> result;
  static const std::regex line(R"(MESHENV id=(\d+) slot=(\d+) pid=(\d+) master=(\S+) mesh=(\S+))");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    result.push_back({static_cast<unsigned>(std::stoul(m[1])), static_cast<unsigned>(std::stoul(m[2])),
                      static_cast<pid_t>(std::stol(m[3])), m[4], m[5]});
  }
  return result;
}

// A record as docs/protocol.md lays it out: u16 type, u16 0, u32 id, u32 slot, u32 0, u64 value (LE).
std::string record(std::uint16_t type, std::uint32_t id, std::uint32_t slot, std::uint64_t value) {
  std::string bytes(24, '\0');
  for (int i = 0; i < 2; ++i) bytes[i] = static_cast<char>(type >> (8 * i));
  for (int i = 0; i < 4; ++i) bytes[4 + i] = static_cast<char>(id >> (8 * i));
  for (int i = 0; i < 4; ++i) bytes[8 + i] = static_cast<char>(slot >> (8 * i));
  for (int i = 0; i < 8; ++i) bytes[16 + i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

struct Decoded {
  std::uint16_t type = 0;
  std::uint32_t id = 0, slot = 0;
  std::uint64_t value = 0;
};

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Exactly n bytes, or what came before the end of the stream or the timeout.
std::string read_bytes(int fd, std::size_t n, std::chrono::milliseconds timeout, bool* eof = nullptr) {
  std::string data;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (eof != nullptr) *eof = false;
  while (data.size() < n) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[64];
    const ssize_t got = ::read(fd, buffer, std::min(sizeof buffer, n - data.size()));
    if (got <= 0) {
      if (eof != nullptr) *eof = true;
      break;
    }
    data.append(buffer, static_cast<std::size_t>(got));
  }
  return data;
}

std::optional<Decoded> read_record(int fd, std::chrono::milliseconds timeout = 5s) {
  const std::string bytes = read_bytes(fd, 24, timeout);
  if (bytes.size() != 24) return std::nullopt;
  const auto byte = [&bytes](int i) {
    return static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i]));
  };
  Decoded d;
  d.type = static_cast<std::uint16_t>(byte(0) | byte(1) << 8);
  for (int i = 3; i >= 0; --i) d.id = static_cast<std::uint32_t>(d.id << 8 | byte(4 + i));
  for (int i = 3; i >= 0; --i) d.slot = static_cast<std::uint32_t>(d.slot << 8 | byte(8 + i));
  for (int i = 7; i >= 0; --i) d.value = d.value << 8 | byte(16 + i);
  return d;
}

// True when the supervisor closed the connection (end of stream) within the timeout.
bool closed_by_supervisor(int fd, std::chrono::milliseconds timeout = 10s) {
  bool eof = false;
  const std::string data = read_bytes(fd, 1, timeout, &eof);
  return data.empty() && eof;
}

class RunMesh : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_.file("worker.py")) << worker_script; }

  ChildProcess start(unsigned nodes, const std::vector<std::string>& options = {}) {
    std::vector<std::string> argv{MULTINODE_COMMAND,
                                  "run",
                                  "-n",
                                  std::to_string(nodes),
                                  "--host",
                                  "127.0.0.1",
                                  "-p",
                                  std::to_string(free_port()),
                                  "--control",
                                  dir_.file("control.sock")};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.insert(argv.end(), {"--", python, dir_.file("worker.py")});
    return ChildProcess::start(argv);
  }

  // The first `count` workers' environments, once they printed them.
  std::vector<WorkerEnv> wait_for_workers(const ChildProcess& supervisor, std::size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto envs = worker_envs(supervisor.output());
      if (envs.size() >= count) return envs;
      std::this_thread::sleep_for(20ms);
    }
    return {};
  }

  TempDir dir_{"run-mesh-test"};  // (not /tmp/multinode-*: `run` checks those as its own)
};

TEST_F(RunMesh, TheDirectoryIsPrivateAndOneWorkerIsMaster) {
  // One left behind by a supervisor that is gone (killed): removed by the next one.
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  const std::string stale = dir_.file("mesh-" + std::to_string(gone) + "-AbCdEf");
  ASSERT_EQ(::mkdir(stale.c_str(), 0700), 0);
  std::ofstream(stale + "/supervisor.sock") << "";

  ChildProcess supervisor = start(3);
  const auto envs = wait_for_workers(supervisor, 3);
  ASSERT_EQ(envs.size(), 3U) << supervisor.error_output();
  unsigned masters = 0;
  for (const auto& env : envs) {
    masters += env.master == "1" ? 1 : 0;
    EXPECT_EQ(env.mesh, envs.front().mesh);
  }
  EXPECT_EQ(masters, 1U);
  const std::string mesh = envs.front().mesh;
  EXPECT_EQ(mesh.rfind(dir_.path() + "/mesh-", 0), 0U) << mesh;  // beside the control socket
  struct stat info {};
  ASSERT_EQ(::lstat(mesh.c_str(), &info), 0);
  EXPECT_TRUE(S_ISDIR(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0700U);
  EXPECT_EQ(info.st_uid, ::geteuid());
  EXPECT_EQ(::access((mesh + "/supervisor.sock").c_str(), F_OK), 0);
  EXPECT_NE(::access(stale.c_str(), F_OK), 0) << "a directory of a supervisor that is gone stayed";

  supervisor.signal(SIGTERM);
  const auto status = supervisor.wait(20s);
  ASSERT_TRUE(status && WIFEXITED(*status)) << supervisor.error_output();
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_NE(::access(mesh.c_str(), F_OK), 0) << "the private directory outlived the supervisor";
}

TEST_F(RunMesh, RefusesWhatIsNotAJoinOfALiveWorker) {
  ChildProcess supervisor = start(2);
  const auto envs = wait_for_workers(supervisor, 2);
  ASSERT_EQ(envs.size(), 2U) << supervisor.error_output();
  const std::string socket = envs.front().mesh + "/supervisor.sock";
  std::map<unsigned, WorkerEnv> by_id;
  for (const auto& env : envs) by_id[env.id] = env;
  ASSERT_EQ(by_id.size(), 2U);
  const unsigned first = by_id.begin()->first, second = by_id.rbegin()->first;

  const auto refused = [&](const std::string& bytes, const std::string& logged, bool then_end = false) {
    const int fd = connect_unix(socket);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_TRUE(write_all(fd, bytes));
    if (then_end) ::shutdown(fd, SHUT_WR);
    EXPECT_TRUE(closed_by_supervisor(fd)) << logged;
    ::close(fd);
    EXPECT_TRUE(supervisor.wait_for_output(logged, 5s, true)) << supervisor.error_output();
  };
  refused(record(0xffff, first, by_id[first].slot, 1), "unknown (type 65535)");           // garbage
  refused(record(1, first, by_id[first].slot, 1), "its first record is a ready record");  // not a join
  refused(record(8, 99, 1, 1), "joins as worker 99, which is not a live worker");         // wrong id
  refused(record(8, first, by_id[first].slot + 7, 1), "is in slot");                      // wrong slot
  refused(std::string(10, '\x08'), "before a whole record", true);                        // cut short

  // A join of a live worker is kept; a second one for it is refused.
  const int joined = connect_unix(socket);
  ASSERT_GE(joined, 0);
  ASSERT_TRUE(write_all(joined, record(8, first, by_id[first].slot, by_id[first].pid)));
  const int again = connect_unix(socket);
  ASSERT_GE(again, 0);
  ASSERT_TRUE(write_all(again, record(8, first, by_id[first].slot, by_id[first].pid)));
  EXPECT_TRUE(closed_by_supervisor(again));
  ::close(again);
  EXPECT_TRUE(supervisor.wait_for_output("has joined already", 5s, true));

  // The next joiner gets a peer record for the first; the first gets nothing.
  const int later = connect_unix(socket);
  ASSERT_GE(later, 0);
  ASSERT_TRUE(write_all(later, record(8, second, by_id[second].slot, by_id[second].pid)));
  const auto peer = read_record(later);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->type, 3);
  EXPECT_EQ(peer->id, first);
  EXPECT_EQ(peer->slot, by_id[first].slot);
  EXPECT_EQ(peer->value, 0U);
  // ready and watchdog are what a member may send; anything else closes its connection.
  ASSERT_TRUE(write_all(later, record(10, second, by_id[second].slot, 0)));
  ASSERT_TRUE(write_all(later, record(1, second, by_id[second].slot, by_id[second].pid)));
  ASSERT_TRUE(write_all(joined, record(2, first, by_id[first].slot, 0)));
  EXPECT_TRUE(closed_by_supervisor(joined));
  ::close(joined);
  EXPECT_TRUE(supervisor.wait_for_output("sent a stop record after its join", 5s, true));

  // A connection that sends nothing is closed after the join timeout (5 s).
  const int silent = connect_unix(socket);
  ASSERT_GE(silent, 0);
  EXPECT_TRUE(closed_by_supervisor(silent, 15s));
  ::close(silent);
  EXPECT_TRUE(supervisor.wait_for_output("sent no join record within 5000 ms", 5s, true));

  // The supervisor still serves its members: `later` is open and hears of the master role
  // when its holder is killed (the first worker, whose connection closed, cannot hear it).
  const WorkerEnv& holder = by_id[first].master == "1" ? by_id[first] : by_id[second];
  if (holder.id == first) {
    ASSERT_EQ(::kill(holder.pid, SIGKILL), 0);
    const auto master = read_record(later, 10s);
    ASSERT_TRUE(master) << supervisor.error_output();
    EXPECT_EQ(master->type, 9);
    EXPECT_EQ(master->id, second);
    EXPECT_EQ(master->slot, by_id[second].slot);
    EXPECT_EQ(master->value, 1U);
    // Its replacement starts without the role: it was handed over.
    const auto after = wait_for_workers(supervisor, 3);
    ASSERT_EQ(after.size(), 3U) << supervisor.error_output();
    EXPECT_EQ(after.back().master, "-");
    EXPECT_EQ(after.back().slot, holder.slot);
  } else {
    ADD_FAILURE() << "the first worker started did not get MULTINODE_MASTER=1";
  }
  ::close(later);
  supervisor.signal(SIGTERM);
  const auto status = supervisor.wait(20s);
  ASSERT_TRUE(status && WIFEXITED(*status)) << supervisor.error_output();
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(RunMesh, WithUserTheDirectoryBelongsToTheWorkersUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "dropping privileges needs root";
  // nobody reads worker.py here, but may not write: the directory goes to /tmp/multinode-65534.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ChildProcess supervisor = start(2, {"--user", "nobody"});
  const auto envs = wait_for_workers(supervisor, 2);
  ASSERT_EQ(envs.size(), 2U) << supervisor.error_output();
  const std::string mesh = envs.front().mesh;
  EXPECT_EQ(mesh.rfind("/tmp/multinode-65534/mesh-", 0), 0U) << mesh;
  struct stat info {};
  ASSERT_EQ(::lstat(mesh.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 65534U);
  EXPECT_EQ(info.st_mode & 0777, 0700U);
  ASSERT_EQ(::lstat((mesh + "/supervisor.sock").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 65534U);
  supervisor.signal(SIGTERM);
  const auto status = supervisor.wait(20s);
  ASSERT_TRUE(status && WIFEXITED(*status)) << supervisor.error_output();
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_NE(::access(mesh.c_str(), F_OK), 0) << "the private directory outlived the supervisor";
}

TEST_F(RunMesh, BridgeIsPassedToTheWorkersAsOneHost) {
  // Nothing listens on port 1: the supervisor keeps no link, so it starts all the same.
  ChildProcess supervisor = start(2, {"--bridge", "redis://127.0.0.1:1/3", "--bridge-prefix", "app:"});
  ASSERT_EQ(wait_for_workers(supervisor, 2).size(), 2U) << supervisor.error_output();
  static const std::regex line(R"(BRIDGE url=(\S+) prefix=(\S+) host=(\d+))");
  std::vector<std::smatch> found;
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (found.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    output = supervisor.output();
    found.clear();
    for (auto it = std::sregex_iterator(output.begin(), output.end(), line); it != std::sregex_iterator();
         ++it)
      found.push_back(*it);
  }
  ASSERT_EQ(found.size(), 2U) << output;
  for (const auto& m : found) {
    EXPECT_EQ(m[1], "redis://127.0.0.1:1/3");
    EXPECT_EQ(m[2], "app:");
    EXPECT_EQ(m[3], found.front()[3]);  // one host id for every worker of the supervisor
  }
  EXPECT_EQ(supervisor.error_output().find("bridge"), std::string::npos) << supervisor.error_output();
  supervisor.signal(SIGTERM);
  const auto status = supervisor.wait(20s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);

  // A URL that is not redis:// fails at start, saying why.
  ChildProcess bad = start(1, {"--bridge", "http://127.0.0.1:1"});
  const auto bad_status = bad.wait(20s);
  ASSERT_TRUE(bad_status && WIFEXITED(*bad_status));
  EXPECT_EQ(WEXITSTATUS(*bad_status), 1);
  EXPECT_NE(bad.error_output().find("Options::bridge"), std::string::npos) << bad.error_output();
  // Neither supervisor left its private directory behind (the failed start neither).
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path()))
    EXPECT_NE(entry.path().filename().string().rfind("mesh-", 0), 0U) << entry.path();
}

}  // namespace
}  // namespace multinode::test

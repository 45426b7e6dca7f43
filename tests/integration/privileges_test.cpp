// hello started as root with --user / --group: it binds first (a port below 1024
// too, or the socket systemd passed), then the master and every worker run as
// nobody:nogroup only (every uid, every gid, the supplementary groups), the port is
// served, the log file stays writable, and unknown names or a user who may not
// change ids are refused with what to do. Root only (skipped otherwise).
#include "process.hpp"

#include <multinode/control.hpp>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

// The fields of a /proc/<pid>/status line ("Uid:", "Gid:", "Groups:").
std::vector<std::string> status_fields(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream rest(line.substr(key.size()));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;) fields.push_back(field);
    return fields;
  }
  return {"(no " + key + " line)"};
}

// Real, effective, saved and filesystem ids all nobody:nogroup, no other group.
void expect_nobody(pid_t pid) {
  const std::string n = std::to_string(65534);
  const std::vector<std::string> four = {n, n, n, n};
  EXPECT_EQ(status_fields(pid, "Uid:"), four) << "pid " << pid;
  EXPECT_EQ(status_fields(pid, "Gid:"), four) << "pid " << pid;
  EXPECT_EQ(status_fields(pid, "Groups:"), std::vector<std::string>{n}) << "pid " << pid;
}

std::vector<pid_t> wait_for_children(pid_t master, std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::vector<pid_t> children = child_pids(master);
  while (children.size() != count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    children = child_pids(master);
  }
  return children;
}

// A free loopback port below 1024, found by trying (only root can bind one).
int bind_privileged(std::uint16_t* port) {
  for (std::uint16_t candidate = 900; candidate <= 1000; ++candidate) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(candidate);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      *port = candidate;
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

// hello's exit status and stderr for arguments that must be refused.
std::pair<int, std::string> refused(const std::vector<std::string>& argv) {
  auto server = ChildProcess::start(argv);
  const auto status = server.wait(10s);
  if (!status || !WIFEXITED(*status)) return {-1, server.error_output()};
  return {WEXITSTATUS(*status), server.error_output()};
}

class Privileges : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "dropping privileges needs root";
  }
};

TEST_F(Privileges, EveryProcessRunsAsNobodyAndThePortIsServed) {
  const std::uint16_t port = free_port();
  auto server = ChildProcess::start({example_path("hello"), "--nodes", "3", "--user", "nobody", "--group",
                                     "nogroup", "--port", std::to_string(port), "--host", "127.0.0.1"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  EXPECT_TRUE(
      server.wait_for_output("running as user nobody (uid 65534), group nogroup (gid 65534)", 1s, true))
      << server.error_output();
  const auto workers = wait_for_children(server.pid(), 2);
  ASSERT_EQ(workers.size(), 2u) << server.error_output();
  std::set<pid_t> answered;
  for (int i = 0; i < 300 && answered.size() < 3; ++i) {
    const pid_t pid = greet(port);
    ASSERT_GT(pid, 0) << server.error_output();
    answered.insert(pid);
  }
  EXPECT_EQ(answered.size(), 3u) << "every process serves";
  expect_nobody(server.pid());
  for (const pid_t worker : workers) expect_nobody(worker);

  // A replacement is started by the dropped master: nobody too.
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
  ASSERT_TRUE(server.wait_for_log_count("is ready", 3, 10s)) << server.error_output();
  for (const pid_t worker : wait_for_children(server.pid(), 2)) expect_nobody(worker);
}

TEST_F(Privileges, TheControlSocketBelongsToTheUserAndEveryProcessItListsRunsAsIt) {
  const TempDir temp("multinode-privileges");
  const std::string& dir = temp.path();
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  const std::string socket = dir + "/control.sock";
  const std::uint16_t port = free_port();
  {
    auto server =
        ChildProcess::start({example_path("hello"), "--nodes", "3", "--user", "nobody", "--group", "nogroup",
                             "--port", std::to_string(port), "--host", "127.0.0.1", "--control", socket});
    ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
    struct stat st {};
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u) << "the control socket belongs to nobody";
    EXPECT_EQ(st.st_gid, 65534u);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_GT(greet(port), 0) << server.error_output();
    // Every process status lists runs as nobody, and so does the master.
    const auto status = boost::json::parse(control_command(socket, "status")).as_object();
    const auto& master = status.at("master").as_object();
    EXPECT_EQ(master.at("pid").to_number<pid_t>(), server.pid());
    expect_nobody(server.pid());
    const auto& workers = status.at("workers").as_array();
    ASSERT_EQ(workers.size(), 2u);
    for (const auto& worker : workers) expect_nobody(worker.as_object().at("pid").to_number<pid_t>());
    // nobody (the master) can still reload through its own socket, and stop.
    EXPECT_EQ(control_command(socket, "reload").rfind("ok: rolling restart", 0), 0u);
    ASSERT_TRUE(server.wait_for_log_count("is ready", 4, 15s)) << server.error_output();
    EXPECT_EQ(control_command(socket, "stop"), "ok: stopping gracefully\n");
    const auto exited = server.wait(10s);
    ASSERT_TRUE(exited.has_value());
    EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << server.error_output();
    // nobody may not write root's 0755 directory: the socket file stays, the master
    // says so, and the next start replaces the stale file.
    EXPECT_NE(server.error_output().find("cannot remove the control socket " + socket), std::string::npos)
        << server.error_output();
  }
  auto again = ChildProcess::start({example_path("hello"), "--nodes", "2", "--user", "nobody", "--port",
                                    std::to_string(free_port()), "--host", "127.0.0.1", "--control", socket});
  ASSERT_TRUE(again.wait_for_log_count("is ready", 1, 10s)) << again.error_output();
  EXPECT_EQ(boost::json::parse(control_command(socket, "status")).at("master").at("pid").to_number<pid_t>(),
            again.pid());
  again.kill_all();
}

TEST_F(Privileges, APortBelow1024IsBoundFirstAndServedAfterTheDrop) {
  std::uint16_t port = 0;
  const int probe = bind_privileged(&port);
  ASSERT_GE(probe, 0) << "no free port in 900-1000";
  ::close(probe);
  // No --group: the user's primary group (nogroup for nobody on Debian).
  auto server = ChildProcess::start({example_path("hello"), "--nodes", "2", "--user", "nobody", "--port",
                                     std::to_string(port), "--host", "127.0.0.1"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  EXPECT_GT(greet(port), 0) << server.error_output();
  expect_nobody(server.pid());
  for (const pid_t worker : wait_for_children(server.pid(), 1)) expect_nobody(worker);
}

TEST_F(Privileges, ASocketPassedBySystemdIsServedAfterTheDrop) {
  std::uint16_t port = 0;
  const int listener = bind_privileged(&port);
  ASSERT_GE(listener, 0) << "no free port in 900-1000";
  ASSERT_EQ(::listen(listener, 64), 0);
  const std::string command = "LISTEN_PID=$$ LISTEN_FDS=1 exec " + example_path("hello") +
                              " --nodes 2 --user nobody --group nogroup --port 1 --host 127.0.0.1";
  auto server = ChildProcess::start({"/bin/sh", "-c", command}, {}, {listener});
  ::close(listener);
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  std::set<pid_t> answered;
  for (int i = 0; i < 300 && answered.size() < 2; ++i) {
    const pid_t pid = greet(port);
    ASSERT_GT(pid, 0) << server.error_output();
    answered.insert(pid);
  }
  EXPECT_EQ(answered.size(), 2u);
  expect_nobody(server.pid());
  for (const pid_t worker : wait_for_children(server.pid(), 1)) expect_nobody(worker);
}

TEST_F(Privileges, TheLogFileOpenedAsRootStaysWritableByEveryProcess) {
  const TempDir temp("multinode-privileges");
  const std::string& dir = temp.path();
  const std::string log = dir + "/hello.log";
  {
    // mkdtemp's 0700 keeps nobody out of the directory: refused at once, not in every worker.
    const auto [status, error] = refused({example_path("hello"), "--nodes", "2", "--user", "nobody", "--port",
                                          std::to_string(free_port()), "--log-file", log});
    EXPECT_EQ(status, 1);
    EXPECT_NE(error.find("user nobody cannot open the log file " + log), std::string::npos) << error;
    EXPECT_NE(error.find("traverse"), std::string::npos) << error;
  }
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);  // like /var/log
  {
    auto server =
        ChildProcess::start({example_path("hello"), "--nodes", "3", "--user", "nobody", "--port",
                             std::to_string(free_port()), "--host", "127.0.0.1", "--log-file", log});
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    std::string text;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(log);
      text.assign(std::istreambuf_iterator<char>(in), {});
      if (text.find("worker 2 (slot 2") != std::string::npos && text.find("is ready") != std::string::npos)
        break;
      std::this_thread::sleep_for(20ms);
    }
    struct stat st {};
    ASSERT_EQ(::stat(log.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u) << "handed over to the user, so workers can open it";
    server.signal(SIGTERM);
    const auto status = server.wait(10s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
  }
  std::ifstream in(log);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  // Each worker wrote its own stopping line into the file it opened as nobody.
  EXPECT_NE(text.find("multinode[worker 1 slot 1"), std::string::npos) << text;
  EXPECT_NE(text.find("multinode[worker 2 slot 2"), std::string::npos) << text;
  EXPECT_EQ(text.find("cannot open the log file"), std::string::npos) << text;
}

TEST_F(Privileges, AnUnknownUserOrGroupIsRefusedWithWhatToDo) {
  const std::string port = std::to_string(free_port());
  const auto [user_status, user_error] =
      refused({example_path("hello"), "--user", "no-such-user-xyz", "--port", port});
  EXPECT_EQ(user_status, 1);
  EXPECT_NE(user_error.find("no user named 'no-such-user-xyz'"), std::string::npos) << user_error;
  EXPECT_NE(user_error.find("useradd"), std::string::npos) << user_error;

  const auto [group_status, group_error] =
      refused({example_path("hello"), "--user", "nobody", "--group", "no-such-group-xyz", "--port", port});
  EXPECT_EQ(group_status, 1);
  EXPECT_NE(group_error.find("no group named 'no-such-group-xyz'"), std::string::npos) << group_error;
  EXPECT_NE(group_error.find("groupadd"), std::string::npos) << group_error;
}

TEST_F(Privileges, AUserWhoMayNotChangeIdsIsToldToRunAsRoot) {
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  const std::string port = std::to_string(free_port());
  const auto [status, error] =
      refused({"/usr/bin/setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
               example_path("hello"), "--user", "root", "--port", port});
  EXPECT_EQ(status, 1);
  EXPECT_NE(error.find("run as root, or drop --user"), std::string::npos) << error;
  // The current user is no change at all: it serves.
  auto same = ChildProcess::start({"/usr/bin/setpriv", "--reuid", "nobody", "--regid", "nogroup",
                                   "--clear-groups", example_path("hello"), "--nodes", "2", "--user",
                                   "nobody", "--port", port, "--host", "127.0.0.1"});
  ASSERT_TRUE(same.wait_for_log_count("is ready", 1, 10s)) << same.error_output();
  EXPECT_GT(greet(static_cast<std::uint16_t>(std::stoi(port))), 0) << same.error_output();
}

}  // namespace
}  // namespace multinode::test

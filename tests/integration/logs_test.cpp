// The hello example logging to a file (--log-file, --log-format): JSON lines of
// four processes writing at once all parse, SIGUSR1 after a rename (logrotate)
// moves every process to the new file, the text form keeps its prefix, and bad
// flags or an unopenable file are refused with a message that says why.
#include "process.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

namespace json = boost::json;

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::size_t count_containing(const std::string& path, std::string_view needle) {
  std::size_t count = 0;
  for (const auto& line : file_lines(path)) count += line.find(needle) != std::string::npos ? 1 : 0;
  return count;
}

bool wait_for_count(const std::string& path, std::string_view needle, std::size_t count,
                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (count_containing(path, needle) < count) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

ChildProcess start_hello(const std::string& log_file, const std::vector<std::string>& more,
                         const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {
      example_path("hello"), "--port", std::to_string(free_port()), "--host", "127.0.0.1",
      "--log-file",          log_file};
  argv.insert(argv.end(), more.begin(), more.end());
  return ChildProcess::start(argv, env);
}

// One JSON log line checked against the contract: exactly these seven keys, their types.
struct Line {
  std::string time, level, role, message;
  std::int64_t id = -1, slot = -1, pid = -1;
};

std::optional<Line> parse_line(const std::string& text) {
  boost::system::error_code error;
  const json::value value = json::parse(text, error);
  if (error || !value.is_object()) return std::nullopt;
  const json::object& object = value.as_object();
  if (object.size() != 7) return std::nullopt;
  for (const char* key : {"time", "level", "role", "message"}) {
    if (!object.contains(key) || !object.at(key).is_string()) return std::nullopt;
  }
  for (const char* key : {"id", "slot", "pid"}) {
    if (!object.contains(key) || !object.at(key).is_int64()) return std::nullopt;
  }
  Line line;
  line.time = object.at("time").as_string();
  line.level = object.at("level").as_string();
  line.role = object.at("role").as_string();
  line.message = object.at("message").as_string();
  line.id = object.at("id").as_int64();
  line.slot = object.at("slot").as_int64();
  line.pid = object.at("pid").as_int64();
  return line;
}

std::vector<Line> parse_all(const std::string& path) {
  static const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  static const std::set<std::string> levels = {"debug", "info", "warning", "error"};
  std::vector<Line> lines;
  for (const auto& text : file_lines(path)) {
    const auto line = parse_line(text);
    EXPECT_TRUE(line) << "not a log line with exactly the seven keys: " << text;
    if (!line) continue;
    EXPECT_TRUE(std::regex_match(line->time, rfc3339)) << text;
    EXPECT_TRUE(levels.contains(line->level)) << text;
    EXPECT_TRUE(line->role == "master" || line->role == "worker") << text;
    lines.push_back(*line);
  }
  return lines;
}

struct WorkerSeen {
  std::int64_t id, slot;
};

// The workers the master reported ready: pid -> id and slot.
std::map<std::int64_t, WorkerSeen> ready_workers(const std::vector<Line>& lines, pid_t master) {
  static const std::regex ready(R"(worker (\d+) \(slot (\d+), pid (\d+)\) is ready)");
  std::map<std::int64_t, WorkerSeen> workers;
  for (const auto& line : lines) {
    std::smatch match;
    if (line.pid == master && std::regex_match(line.message, match, ready)) {
      workers[std::stoll(match[3])] = {std::stoll(match[1]), std::stoll(match[2])};
    }
  }
  return workers;
}

TEST(Logs, JsonLinesOfFourProcessesWritingAtOnceAllParse) {
  TempDir dir{"multinode-logs"};
  const std::string file = dir.path() + "/hello.log";
  auto hello = start_hello(file, {"--nodes", "4", "--log-format", "json"}, {"MULTINODE_LOG_LEVEL=debug"});
  ASSERT_TRUE(wait_for_count(file, "is ready", 3, 10s)) << hello.error_output();
  // Two rolling restarts and a stop: the master and old and new workers log at the same moments.
  hello.signal(SIGHUP);
  ASSERT_TRUE(wait_for_count(file, "is ready", 6, 10s)) << hello.error_output();
  hello.signal(SIGHUP);
  ASSERT_TRUE(wait_for_count(file, "is ready", 9, 10s)) << hello.error_output();
  hello.signal(SIGTERM);
  const auto status = hello.wait(15s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_EQ(hello.error_output().find("multinode["), std::string::npos)
      << "the library wrote to stderr: " << hello.error_output();

  const auto lines = parse_all(file);
  ASSERT_GT(lines.size(), 30u);
  EXPECT_EQ(lines.size(), file_lines(file).size());
  const auto workers = ready_workers(lines, hello.pid());
  EXPECT_EQ(workers.size(), 9u);
  std::set<std::int64_t> stopped;  // workers that logged their own graceful stop
  for (const auto& line : lines) {
    if (line.role == "master") {
      EXPECT_EQ(line.pid, hello.pid()) << line.message;
      EXPECT_EQ(line.id, 0);
      EXPECT_EQ(line.slot, 0);
      continue;
    }
    const auto it = workers.find(line.pid);
    ASSERT_NE(it, workers.end()) << "a line from pid " << line.pid << ", not a worker of this master";
    EXPECT_EQ(line.id, it->second.id);
    EXPECT_EQ(line.slot, it->second.slot);
    EXPECT_GE(line.slot, 1);
    EXPECT_LE(line.slot, 3);
    if (line.message.rfind("stopping gracefully", 0) == 0) stopped.insert(line.pid);
  }
  EXPECT_EQ(stopped.size(), 9u) << "every worker's stop line is in the file, whole";
}

TEST(Logs, Sigusr1AfterARenameMovesEveryProcessToTheNewFile) {
  TempDir dir{"multinode-logs"};
  const std::string file = dir.path() + "/hello.log";
  const std::string rotated = file + ".1";
  auto hello = start_hello(file, {"--nodes", "3", "--log-format", "json"});
  ASSERT_TRUE(wait_for_count(file, "is ready", 2, 10s)) << hello.error_output();
  const auto first_workers = ready_workers(parse_all(file), hello.pid());
  ASSERT_EQ(first_workers.size(), 2u);

  ASSERT_EQ(std::rename(file.c_str(), rotated.c_str()), 0);  // what logrotate does
  hello.signal(SIGUSR1);
  ASSERT_TRUE(wait_for_count(file, "log file reopened", 3, 10s)) << hello.error_output();
  std::set<std::int64_t> reopened;
  for (const auto& line : parse_all(file)) {
    if (line.message == "log file reopened (SIGUSR1)") reopened.insert(line.pid);
  }
  std::set<std::int64_t> expected = {hello.pid()};
  for (const auto& [pid, worker] : first_workers) expected.insert(pid);
  EXPECT_EQ(reopened, expected);

  // The old workers' last lines (their stop in a rolling restart) go to the new file too.
  hello.signal(SIGHUP);
  ASSERT_TRUE(wait_for_count(file, "is ready", 2, 10s)) << hello.error_output();
  ASSERT_TRUE(wait_for_count(file, "stopping gracefully", 2, 10s)) << hello.error_output();
  hello.signal(SIGTERM);
  const auto status = hello.wait(15s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;

  const auto current = parse_all(file);
  std::set<std::int64_t> stopped;
  for (const auto& line : current) {
    if (line.message.rfind("stopping gracefully", 0) == 0) stopped.insert(line.pid);
  }
  for (const auto& [pid, worker] : first_workers) EXPECT_TRUE(stopped.contains(pid)) << pid;
  for (const auto& line : parse_all(rotated)) {
    EXPECT_EQ(line.message.find("reopened"), std::string::npos) << line.message;
    EXPECT_EQ(line.message.find("stopping"), std::string::npos) << line.message;
    EXPECT_EQ(line.message.find("rolling restart"), std::string::npos) << line.message;
  }
}

// A process that is stopping ignores SIGUSR1: its default action would kill it mid-drain.
TEST(Logs, Sigusr1DuringTheGracefulStopKillsNothing) {
  TempDir dir{"multinode-logs"};
  const std::string file = dir.path() + "/hello.log";
  const std::uint16_t port = free_port();
  auto hello = ChildProcess::start({example_path("hello"), "--port", std::to_string(port), "--host",
                                    "127.0.0.1", "--nodes", "1", "--log-file", file, "--log-format", "json"});
  // A request half sent keeps the only process (the master) draining after TERM.
  const int fd = wait_for_connect(port, 10s);
  ASSERT_GE(fd, 0) << hello.error_output();
  ASSERT_TRUE(write_all(fd, "GET / HTTP/1.1\r\nHost: h\r\n"));
  std::this_thread::sleep_for(100ms);
  hello.signal(SIGTERM);
  ASSERT_TRUE(wait_for_count(file, "stopping gracefully: SIGTERM", 1, 10s)) << hello.error_output();
  hello.signal(SIGUSR1);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(process_alive(hello.pid()));
  ASSERT_TRUE(write_all(fd, "\r\n"));  // the request completes; its answer closes the connection
  read_until_closed(fd, 5s);
  ::close(fd);
  const auto status = hello.wait(15s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
}

TEST(Logs, TextFormatKeepsTheProcessPrefix) {
  TempDir dir{"multinode-logs"};
  const std::string file = dir.path() + "/hello.log";
  auto hello = start_hello(file, {"--nodes", "2"});
  ASSERT_TRUE(wait_for_count(file, "is ready", 1, 10s)) << hello.error_output();
  hello.signal(SIGTERM);
  const auto status = hello.wait(15s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;

  const std::regex prefix(R"(multinode\[(master pid (\d+)|worker (\d+) slot (\d+) pid (\d+))\] .+)");
  const std::regex ready(R"(multinode\[master pid \d+\] worker (\d+) \(slot (\d+), pid (\d+)\) is ready)");
  std::string worker_prefix;
  const auto lines = file_lines(file);
  ASSERT_GE(lines.size(), 4u);
  for (const auto& line : lines) {
    std::smatch match;
    EXPECT_TRUE(std::regex_match(line, match, prefix)) << line;
    if (match.size() > 2 && match[2].matched) {
      EXPECT_EQ(match[2], std::to_string(hello.pid())) << line;
    }
    if (std::regex_match(line, match, ready)) {
      worker_prefix = "multinode[worker " + std::string(match[1]) + " slot " + std::string(match[2]) +
                      " pid " + std::string(match[3]) + "] ";
    }
  }
  ASSERT_FALSE(worker_prefix.empty());
  EXPECT_EQ(count_containing(file, worker_prefix + "stopping gracefully"), 1u) << worker_prefix;
}

TEST(Logs, BadFormatAndUnopenableFileAreRefusedWithTheReason) {
  auto bad = ChildProcess::start({example_path("hello"), "--log-format", "xml"});
  const auto bad_status = bad.wait(10s);
  ASSERT_TRUE(bad_status);
  EXPECT_TRUE(WIFEXITED(*bad_status) && WEXITSTATUS(*bad_status) == 2);
  EXPECT_NE(bad.error_output().find("--log-format: must be json or text, not 'xml'"), std::string::npos)
      << bad.error_output();

  const std::string missing = "/nonexistent-multinode-dir/hello.log";
  auto unopenable = start_hello(missing, {"--nodes", "2"});
  const auto status = unopenable.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_NE(unopenable.error_output().find("cannot open the log file " + missing), std::string::npos)
      << unopenable.error_output();
}

}  // namespace
}  // namespace multinode::test

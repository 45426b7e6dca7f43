// The log lines: the JSON line encoder (escaping, invalid UTF-8, the time), the
// output file (open errors, reopen after a rename) and four processes appending to
// one file at once without a torn or merged line.
#include "common/log.hpp"

// Boost.JSON compiled into this test: multinode_common, all this test links, does not use it.
#include <boost/json/src.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace multinode::detail {
namespace {

namespace json = boost::json;

// The string json_string(text) encodes, as a JSON parser reads it back.
std::string round_trip(std::string_view text) {
  const std::string encoded = json_string(text);
  boost::system::error_code error;
  const json::value value = json::parse(encoded, error);
  EXPECT_FALSE(error) << encoded;
  if (error || !value.is_string()) return "<not a JSON string>";
  return std::string(value.as_string());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text.substr(start) + "<no newline>");
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// A fresh directory for one test's files, removed with them at the end.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/multinode-log-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Each test that logs to a file goes back to stderr at the end.
struct RestoreStderr {
  ~RestoreStderr() { set_log_output("", false); }
};

TEST(LogJson, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("plain text"), "\"plain text\"");
  EXPECT_EQ(json_string("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(json_string("C:\\dir"), R"("C:\\dir")");
  EXPECT_EQ(json_string("a\nb\rc\td\be\ff"), R"("a\nb\rc\td\be\ff")");
  EXPECT_EQ(json_string(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(json_string("\x7f/"), "\"\x7f/\"");  // DEL and '/' need no escape
  const std::string every_control = [] {
    std::string s;
    for (int c = 0; c < 0x20; ++c) s += static_cast<char>(c);
    return s + "\"\\";
  }();
  EXPECT_EQ(round_trip(every_control), every_control);
}

TEST(LogJson, KeepsValidUtf8) {
  for (const std::string text : {"caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                                 "\xed\x9f\xbf", "\xee\x80\x80"}) {
    EXPECT_EQ(json_string(text), "\"" + text + "\"");
    EXPECT_EQ(round_trip(text), text);
  }
}

TEST(LogJson, ReplacesInvalidUtf8WithReplacementCharacters) {
  const std::string r = "\xef\xbf\xbd";  // U+FFFD
  const std::map<std::string, std::string> cases = {
      {"\xff", r},
      {"a\x80z", "a" + r + "z"},            // a lone continuation byte
      {"end\xc3", "end" + r},               // cut short by the end
      {"\xe2\x82z", r + "z"},               // cut short: one U+FFFD for the maximal subpart
      {"\xc0\xaf", r + r},                  // overlong '/'
      {"\xe0\x80\xaf", r + r + r},          // overlong, three bytes
      {"\xf0\x80\x80\xaf", r + r + r + r},  // overlong, four bytes
      {"\xed\xa0\x80", r + r + r},          // a UTF-16 surrogate
      {"\xf4\x90\x80\x80", r + r + r + r},  // above U+10FFFF
      {"\xf5\x80", r + r},                  // no such lead byte
      {"ok\xc3\xa9\xff\xc3\xa9", "ok\xc3\xa9" + r + "\xc3\xa9"},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(json_string(input), "\"" + expected + "\"") << json_string(input);
    EXPECT_EQ(round_trip(input), expected);
  }
}

TEST(LogJson, LineHasExactlyTheSevenKeysWithTheirTypes) {
  const std::int64_t ms = std::int64_t{1796119740} * 1000 + 123;  // 2026-12-01T10:09:00.123Z
  const std::string line = json_log_line(ms, LogLevel::warning, false, 7, 2, 4250, "a \"b\"\n\xff");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line, the message's newline escaped";
  const json::object object = json::parse(line).as_object();
  EXPECT_EQ(object.size(), 7u);
  EXPECT_EQ(object.at("time").as_string(), "2026-12-01T10:09:00.123Z");
  EXPECT_EQ(object.at("level").as_string(), "warning");
  EXPECT_EQ(object.at("role").as_string(), "worker");
  EXPECT_EQ(object.at("id").as_int64(), 7);
  EXPECT_EQ(object.at("slot").as_int64(), 2);
  EXPECT_EQ(object.at("pid").as_int64(), 4250);
  EXPECT_EQ(object.at("message").as_string(), "a \"b\"\n\xef\xbf\xbd");

  const json::object master =
      json::parse(json_log_line(std::int64_t{1796119740} * 1000 + 5, LogLevel::error, true, 0, 0, 1, "x"))
          .as_object();
  EXPECT_EQ(master.at("time").as_string(), "2026-12-01T10:09:00.005Z");
  EXPECT_EQ(master.at("level").as_string(), "error");
  EXPECT_EQ(master.at("role").as_string(), "master");
  EXPECT_EQ(json::parse(json_log_line(0, LogLevel::debug, true, 0, 0, 1, "")).at("level").as_string(),
            "debug");
  EXPECT_EQ(json::parse(json_log_line(0, LogLevel::info, true, 0, 0, 1, "")).at("time").as_string(),
            "1970-01-01T00:00:00.000Z");
}

TEST(LogFile, AnUnopenableFileNamesItsPath) {
  RestoreStderr restore;
  const std::string path = "/nonexistent-multinode-dir/server.log";
  try {
    set_log_output(path, true);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("log_file"), std::string::npos) << e.what();
  }
}

TEST(LogFile, CreatedWithMode0640AndLinesAppendedAsText) {
  RestoreStderr restore;
  TempDir dir;
  const std::string path = dir.path() + "/server.log";
  { std::ofstream(path) << "kept\n"; }
  ::chmod(path.c_str(), 0600);
  const std::string fresh = dir.path() + "/fresh.log";
  const mode_t old_mask = ::umask(0);
  set_log_output(fresh, false);
  ::umask(old_mask);
  struct stat info {};
  ASSERT_EQ(::stat(fresh.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0640u);

  set_log_output(path, false);
  set_log_identity(false, 3, 1);
  log(LogLevel::info, "hello ", 42);
  log(LogLevel::warning, "careful");
  const std::string pid = std::to_string(::getpid());
  EXPECT_EQ(read_file(path), "kept\nmultinode[worker 3 slot 1 pid " + pid +
                                 "] hello 42\nmultinode[worker 3 slot 1 pid " + pid + "] warning: careful\n");
  set_log_identity(true, 0, 0);
}

TEST(LogFile, ReopenFollowsTheRenameAndAFailedReopenKeepsTheOldFile) {
  RestoreStderr restore;
  TempDir dir;
  ASSERT_EQ(::mkdir((dir.path() + "/logs").c_str(), 0700), 0);
  const std::string path = dir.path() + "/logs/server.log";
  set_log_identity(true, 0, 0);
  set_log_output(path, true);
  log(LogLevel::info, "before the rename");
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  reopen_log_file();
  log(LogLevel::info, "after the rename");

  const auto rotated = lines_of(read_file(path + ".1"));
  ASSERT_EQ(rotated.size(), 1u);
  EXPECT_EQ(json::parse(rotated[0]).at("message").as_string(), "before the rename");
  const auto current = lines_of(read_file(path));
  ASSERT_EQ(current.size(), 2u);
  EXPECT_EQ(json::parse(current[0]).at("message").as_string(), "log file reopened (SIGUSR1)");
  EXPECT_EQ(json::parse(current[1]).at("message").as_string(), "after the rename");

  // The directory goes away: the reopen fails, says so once, and lines keep going to the open file.
  ASSERT_EQ(std::rename((dir.path() + "/logs").c_str(), (dir.path() + "/moved").c_str()), 0);
  reopen_log_file();
  log(LogLevel::info, "still here");
  const auto moved = lines_of(read_file(dir.path() + "/moved/server.log"));
  ASSERT_EQ(moved.size(), 4u);
  const json::object error = json::parse(moved[2]).as_object();
  EXPECT_EQ(error.at("level").as_string(), "error");
  EXPECT_NE(std::string(error.at("message").as_string()).find("cannot reopen the log file " + path),
            std::string::npos)
      << moved[2];
  EXPECT_EQ(json::parse(moved[3]).at("message").as_string(), "still here");
}

// Four processes append long and short JSON lines to one file at once: every line
// parses, and each process's lines are all there, whole and in order.
TEST(LogFile, FourProcessesWritingAtOnceNeverTearOrMergeALine) {
  RestoreStderr restore;
  TempDir dir;
  const std::string path = dir.path() + "/shared.log";
  constexpr int processes = 4;
  constexpr int lines_each = 400;
  // Lengths from a few bytes to well beyond PIPE_BUF (4096).
  const auto message_for = [](int process, int line) {
    const std::size_t length = static_cast<std::size_t>((line * 997) % 12000);
    return std::to_string(process) + ":" + std::to_string(line) + ":" +
           std::string(length, static_cast<char>('a' + process));
  };
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      set_log_identity(false, static_cast<std::uint32_t>(p + 1), static_cast<unsigned>(p + 1));
      set_log_output(path, true);
      for (int i = 0; i < lines_each; ++i) log_line(LogLevel::info, message_for(p, i));
      ::_exit(0);
    }
    children.push_back(pid);
  }
  std::map<std::int64_t, int> slot_of_pid;
  for (int p = 0; p < processes; ++p) {
    int status = 0;
    ASSERT_EQ(::waitpid(children[static_cast<std::size_t>(p)], &status, 0),
              children[static_cast<std::size_t>(p)]);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    slot_of_pid[children[static_cast<std::size_t>(p)]] = p;
  }

  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(processes * lines_each));
  std::map<int, int> next_line;  // per process: lines arrive in the order written
  for (const auto& line : lines) {
    boost::system::error_code error;
    const json::value value = json::parse(line, error);
    ASSERT_FALSE(error) << "torn or merged line: " << line.substr(0, 200);
    const json::object& object = value.as_object();
    ASSERT_EQ(object.size(), 7u);
    const std::int64_t pid = object.at("pid").as_int64();
    ASSERT_TRUE(slot_of_pid.contains(pid)) << pid;
    const int p = slot_of_pid[pid];
    EXPECT_EQ(object.at("slot").as_int64(), p + 1);
    EXPECT_EQ(object.at("role").as_string(), "worker");
    ASSERT_EQ(object.at("message").as_string(), message_for(p, next_line[p]));
    ++next_line[p];
  }
  for (int p = 0; p < processes; ++p) EXPECT_EQ(next_line[p], lines_each);
}

}  // namespace
}  // namespace multinode::detail

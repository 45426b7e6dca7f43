// Starting real programs from integration tests and talking to them over loopback.
// Every process started here is killed (with its whole process group) when its
// ChildProcess goes out of scope; every wait is bounded.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::test {

using namespace std::chrono_literals;

// Path of an example program (build/<preset>/examples/<name>) or a test helper program.
std::string example_path(std::string_view name);
std::string test_program_path(std::string_view name);

class ChildProcess {
 public:
  // Starts argv[0] with argv in a new process group; stdout and stderr go to temporary files.
  // extra_env entries are "NAME=value" added to (or replacing in) the current environment.
  // pass_fds become fds 3, 4, ... of the child (the way systemd passes sockets).
  static ChildProcess start(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra_env = {},
                            const std::vector<int>& pass_fds = {});

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();

  pid_t pid() const noexcept { return pid_; }
  void signal(int signal_number) const;
  // Waits for the process to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool exited() const noexcept { return exited_; }
  // Kills the whole process group and reaps the process (idempotent).
  void kill_all();

  std::string output() const;        // what it wrote to stdout so far
  std::string error_output() const;  // what it wrote to stderr so far
  // Waits until stdout (or stderr) contains needle; false on timeout.
  // Reads "port N" from the program's stdout (test_server prints it); 0 on timeout.
  std::uint16_t wait_for_port(std::chrono::milliseconds timeout = 10s) const;
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout,
                       bool in_stderr = false) const;
  // Waits until stderr contains needle at least `count` times (e.g. N "is ready" lines).
  bool wait_for_log_count(std::string_view needle, std::size_t count,
                          std::chrono::milliseconds timeout) const;

 private:
  ChildProcess(pid_t pid, std::string out_path, std::string err_path);
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string out_path_;
  std::string err_path_;
};

// A loopback TCP port that was free a moment ago (bound to port 0 and read back).
std::uint16_t free_port();
// Connects to host:port; -1 when it cannot within the timeout.
int connect_tcp(std::uint16_t port, std::chrono::milliseconds timeout = 5s,
                const std::string& host = "127.0.0.1");
// Retries connect_tcp until a server answers (port open) or the timeout runs out.
int wait_for_connect(std::uint16_t port, std::chrono::milliseconds timeout = 10s,
                     const std::string& host = "127.0.0.1");
bool write_all(int fd, std::string_view bytes);
// Reads one line (without the newline); nullopt on timeout, error or end of stream before a newline.
std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout = 5s);
// Reads until the peer closes or the timeout runs out; `closed` tells which.
std::string read_until_closed(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr);
// Reads until `needle` has been seen (returns everything read) or timeout.
std::string read_until(int fd, std::string_view needle, std::chrono::milliseconds timeout);

// Number of open file descriptors of a process (/proc/<pid>/fd).
int count_open_fds(pid_t pid);
// Pids of the direct children of a process (/proc/<pid>/task/*/children).
std::vector<pid_t> child_pids(pid_t pid);
bool process_alive(pid_t pid);
// Waits until the process is gone (not alive or a zombie); false on timeout.
bool wait_process_gone(pid_t pid, std::chrono::milliseconds timeout);

// examples/hello on port: one GET / with Connection: close; the pid its greeting
// names ("Hello from node N (pid P)"), or -1 when it did not answer 200 with one.
pid_t greet(std::uint16_t port);

// A fresh directory /tmp/<prefix>-XXXXXX, removed with what it holds at the end.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "multinode-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

}  // namespace multinode::test

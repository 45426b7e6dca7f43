#include "process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace multinode::test {
namespace {

using clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string temp_file(const char* what) {
  std::string pattern = std::string("/tmp/multinode-test-") + what + "-XXXXXX";
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed: " + std::string(std::strerror(errno)));
  ::close(fd);
  return pattern;
}

int remaining_ms(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

std::string example_path(std::string_view name) {
  return std::string(MULTINODE_EXAMPLES_DIR) + "/" + std::string(name);
}

std::string test_program_path(std::string_view name) {
  return std::string(MULTINODE_TEST_PROGRAMS_DIR) + "/" + std::string(name);
}

ChildProcess ChildProcess::start(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env,
                                 const std::vector<int>& pass_fds) {
  std::string out_path = temp_file("out");
  std::string err_path = temp_file("err");

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& extra : extra_env) {
      const auto eq = extra.find('=');
      if (entry.substr(0, eq + 1) == std::string_view(extra).substr(0, eq + 1)) replaced = true;
    }
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& extra : extra_env) env_strings.push_back(extra);

  std::vector<char*> c_argv;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  for (const auto& e : env_strings) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::setpgid(0, 0);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_TRUNC);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_TRUNC);
    const int null = ::open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || null < 0) ::_exit(126);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    const int count = static_cast<int>(pass_fds.size());
    std::vector<int> copies;
    for (const int fd : pass_fds) copies.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
    for (int i = 0; i < count; ++i) ::dup2(copies[i], 3 + i);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent, so that kill_all works even before the child ran
  return ChildProcess(pid, std::move(out_path), std::move(err_path));
}

ChildProcess::ChildProcess(pid_t pid, std::string out_path, std::string err_path)
    : pid_(pid), out_path_(std::move(out_path)), err_path_(std::move(err_path)) {}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      exited_(other.exited_),
      status_(other.status_),
      out_path_(std::move(other.out_path_)),
      err_path_(std::move(other.err_path_)) {
  other.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ < 0) return;
  kill_all();
  // A sanitizer report from the program or any of its workers fails the test that started it.
  const std::string errors = error_output();
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
    const auto at = errors.find(marker);
    if (at != std::string::npos) {
      ADD_FAILURE() << "sanitizer report from " << pid_ << ":\n"
                    << errors.substr(at > 2000 ? at - 2000 : 0, 6000);
      break;
    }
  }
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

void ChildProcess::signal(int signal_number) const {
  if (pid_ > 0 && !exited_) ::kill(pid_, signal_number);
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (exited_) return status_;
  const auto deadline = clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = status;
      return status;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
}

void ChildProcess::kill_all() {
  if (pid_ <= 0) return;
  // The group may hold workers that outlived their master: kill them too.
  ::kill(-pid_, SIGKILL);
  if (!exited_) {
    ::kill(pid_, SIGKILL);
    wait(10s);
  }
}

std::string ChildProcess::output() const {
  return read_file(out_path_);
}
std::string ChildProcess::error_output() const {
  return read_file(err_path_);
}

bool ChildProcess::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout,
                                   bool in_stderr) const {
  const auto deadline = clock::now() + timeout;
  while (true) {
    const std::string text = in_stderr ? error_output() : output();
    if (text.find(needle) != std::string::npos) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

bool ChildProcess::wait_for_log_count(std::string_view needle, std::size_t count,
                                      std::chrono::milliseconds timeout) const {
  const auto deadline = clock::now() + timeout;
  while (true) {
    const std::string text = error_output();
    std::size_t seen = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
      ++seen;
    if (seen >= count) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

std::uint16_t ChildProcess::wait_for_port(std::chrono::milliseconds timeout) const {
  if (!wait_for_output("\n", timeout)) return 0;
  const std::string text = output();
  const auto at = text.find("port ");
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::atoi(text.c_str() + at + 5));
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

int connect_tcp(std::uint16_t port, std::chrono::milliseconds timeout, const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* result = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result) != 0) return -1;
  const int fd = ::socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int rc = ::connect(fd, result->ai_addr, result->ai_addrlen);
  ::freeaddrinfo(result);
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      ::close(fd);
      return -1;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      ::close(fd);
      errno = error;
      return -1;
    }
  }
  ::fcntl(fd, F_SETFL, 0);  // blocking from here on; reads use poll with timeouts
  return fd;
}

int wait_for_connect(std::uint16_t port, std::chrono::milliseconds timeout, const std::string& host) {
  const auto deadline = clock::now() + timeout;
  while (true) {
    const int fd = connect_tcp(port, 1s, host);
    if (fd >= 0) return fd;
    if (clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(10ms);
  }
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::string line;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) return std::nullopt;
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, 0);  // one byte at a time: never read past the line
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line.push_back(c);
  }
}

std::string read_until_closed(int fd, std::chrono::milliseconds timeout, bool* closed) {
  const auto deadline = clock::now() + timeout;
  std::string data;
  if (closed != nullptr) *closed = false;
  char buffer[65536];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) return data;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      return data;
    }
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

std::string read_until(int fd, std::string_view needle, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::string data;
  char buffer[65536];
  while (data.find(needle) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) break;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

int count_open_fds(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

std::vector<pid_t> child_pids(pid_t pid) {
  std::vector<pid_t> children;
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(task_dir.c_str());
  if (dir == nullptr) return children;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(task_dir + "/" + entry->d_name + "/children");
    pid_t child = 0;
    while (in >> child) children.push_back(child);
  }
  ::closedir(dir);
  return children;
}

bool process_alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= line.size()) return false;
  const char state = line[close_paren + 2];
  return state != 'Z' && state != 'X';
}

bool wait_process_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  while (process_alive(pid)) {
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

pid_t greet(std::uint16_t port) {
  static const std::regex greeting("Hello from node [0-9]+ \\(pid ([0-9]+)\\)\n");
  const int fd = connect_tcp(port, 5s);
  if (fd < 0) return -1;
  write_all(fd, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const std::string response = read_until_closed(fd, 5s);
  ::close(fd);
  const auto body = response.find("\r\n\r\n");
  std::smatch match;
  const std::string text = body == std::string::npos ? "" : response.substr(body + 4);
  if (response.rfind("HTTP/1.1 200", 0) != 0 || !std::regex_match(text, match, greeting)) return -1;
  return static_cast<pid_t>(std::stol(match[1]));
}

TempDir::TempDir(std::string_view prefix) {
  std::string pattern = "/tmp/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a directory " + pattern + ": " + std::strerror(errno));
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace multinode::test

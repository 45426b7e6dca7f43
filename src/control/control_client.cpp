// multinode::control_command() (include/multinode/control.hpp): blocking I/O
// with poll(), every step bounded by one deadline. No event loop: a command-line
// tool or a test calls it and waits.
#include <multinode/control.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace multinode {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t max_reply = std::size_t{64} * 1024 * 1024;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::system_error failure(int code, const std::string& what) {
  return std::system_error(code, std::generic_category(), what);
}

// Waits until fd is ready for `events` or the deadline passed; false on timeout.
bool wait_for(int fd, short events, clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // the read or write that follows reports it
  }
}

std::string exchange(const std::string& path, std::string_view command, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    throw failure(ENAMETOOLONG, "control socket path '" + path + "' is empty or longer than " +
                                    std::to_string(sizeof address.sun_path - 1) +
                                    " bytes: use a shorter one");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  // Non-blocking: a full backlog fails connect() with EAGAIN instead of blocking past the deadline.
  Fd socket{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (socket.fd < 0) throw failure(errno, "cannot create a socket for the control socket " + path);
  if (::connect(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int code = errno;
    std::string hint = "is the master running with control_socket = " + path + "?";
    if (code == EACCES || code == EPERM)
      hint = "run as the user the master runs as (the socket is mode 0600)";
    if (code == EAGAIN) hint = "the master is busy with other control clients: try again";
    throw failure(code, "cannot connect to the control socket " + path + ": " + std::strerror(code) + " (" +
                            hint + ")");
  }
  std::string line(command);
  line += '\n';
  std::size_t sent = 0;
  while (sent < line.size()) {
    if (!wait_for(socket.fd, POLLOUT, deadline)) {
      throw failure(ETIMEDOUT, "the control socket " + path + " took no command within " +
                                   std::to_string(timeout.count()) + " ms");
    }
    const ssize_t n = ::send(socket.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0)
      throw failure(errno, "cannot send to the control socket " + path + ": " + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buffer[16384];
  while (true) {
    if (!wait_for(socket.fd, POLLIN, deadline)) {
      throw failure(ETIMEDOUT, "no complete reply from the control socket " + path + " within " +
                                   std::to_string(timeout.count()) + " ms (raise the timeout, or see " +
                                   "whether the master is stuck)");
    }
    const ssize_t n = ::recv(socket.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0) return reply;
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      throw failure(errno,
                    "reading the reply of the control socket " + path + " failed: " + std::strerror(errno));
    }
    reply.append(buffer, static_cast<std::size_t>(n));
    if (reply.size() > max_reply) {
      throw failure(EMSGSIZE, "the reply of the control socket " + path + " is over 64 MiB: not a master's");
    }
  }
}

}  // namespace

std::string control_command(const std::string& socket_path, std::string_view command,
                            std::chrono::milliseconds timeout) {
  return exchange(socket_path, command, timeout);
}

std::string control_command(const std::string& socket_path, std::string_view command,
                            std::chrono::milliseconds timeout, std::error_code& error) {
  try {
    std::string reply = exchange(socket_path, command, timeout);
    error.clear();
    return reply;
  } catch (const std::system_error& e) {
    error = e.code();
    return {};
  }
}

}  // namespace multinode

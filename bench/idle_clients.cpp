// Holds many idle keep-alive HTTP connections open, for bench/idle_memory.sh: opens
// N connections to 127.0.0.1:PORT, sends one GET on each and reads its response,
// prints "ready N" and waits for a line (or the end) on stdin; then sends a second
// GET on each, reads the answers, prints "served K closed C" and exits (0 when every
// connection served its second request too).
//
//   idle_clients --port P --connections N
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Connection {
  int fd = -1;
  std::string received;
  bool done = false;    // the current response is complete
  bool closed = false;  // the server closed (or reset) the connection
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "idle_clients: %s\n", what.c_str());
  std::exit(1);
}

// Whether `received` holds one whole response (Content-Length framed, as both
// hello and nginx's `return 200` answer); drops it when it does.
bool take_response(std::string& received) {
  const std::size_t head_end = received.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::size_t length = 0;
  const std::string_view head(received.data(), head_end);
  for (std::size_t at = 0; at < head.size();) {
    std::size_t end = head.find("\r\n", at);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view line = head.substr(at, end - at);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0)
      length = std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
    at = end + 2;
  }
  if (received.size() < head_end + 4 + length) return false;
  received.erase(0, head_end + 4 + length);
  return true;
}

// Sends the request on connections [first, last) and reads until each has its
// answer (or closed); gives up after 60 s without progress.
void exchange(std::vector<Connection>& connections, std::size_t first, std::size_t last, int epoll_fd,
              const std::string& request) {
  std::size_t pending = 0;
  for (std::size_t i = first; i < last; ++i) {
    Connection& c = connections[i];
    c.done = false;
    if (c.closed) continue;
    if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      c.closed = true;
      continue;
    }
    ++pending;
  }
  std::vector<epoll_event> events(1024);
  char buffer[4096];
  int idle_rounds = 0;
  while (pending > 0 && idle_rounds < 60) {
    const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno != EINTR) die(std::string("epoll_wait: ") + std::strerror(errno));
    idle_rounds = n > 0 ? 0 : idle_rounds + 1;
    for (int i = 0; i < n; ++i) {
      Connection& c = connections[events[i].data.u32];
      if (c.done || c.closed) continue;
      for (;;) {
        const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (got > 0) {
          c.received.append(buffer, static_cast<std::size_t>(got));
          continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
        c.closed = true;  // end of stream or an error
        --pending;
        break;
      }
      if (!c.closed && take_response(c.received)) {
        c.done = true;
        --pending;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  long count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    if (arg == "--port")
      port = std::atoi(argv[i + 1]);
    else if (arg == "--connections")
      count = std::atol(argv[i + 1]);
    else
      die("unknown argument " + std::string(arg) + " (usage: idle_clients --port P --connections N)");
  }
  if (port <= 0 || count <= 0) die("usage: idle_clients --port P --connections N");

  // One descriptor per connection, and a few besides.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const auto wanted = static_cast<rlim_t>(count + 64);
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted)
    die("the hard limit on open files is " + std::to_string(limit.rlim_max) + ", " + std::to_string(count) +
        " connections need " + std::to_string(wanted) + ": raise it (limits.conf, or ulimit -Hn as root)");
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) die(std::string("setrlimit: ") + std::strerror(errno));
  }

  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die(std::string("epoll_create1: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
  std::vector<Connection> connections(static_cast<std::size_t>(count));
  // In batches, each answered before the next connects: a server's accept queue
  // (nginx's backlog is 511) never overflows, which would stall the handshakes.
  constexpr std::size_t batch = 256;
  for (std::size_t i = 0; i < connections.size(); ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      die("connection " + std::to_string(i) + ": connect: " + std::strerror(errno));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = static_cast<std::uint32_t>(i);
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0)
      die(std::string("epoll_ctl: ") + std::strerror(errno));
    connections[i].fd = fd;
    if ((i + 1) % batch == 0 || i + 1 == connections.size())
      exchange(connections, i + 1 - ((i + 1) % batch == 0 ? batch : (i + 1) % batch), i + 1, epoll_fd,
               request);
  }

  long ready = 0;
  for (const Connection& c : connections) ready += c.done ? 1 : 0;
  if (ready != count) {
    long closed = 0;
    for (const Connection& c : connections) closed += c.closed ? 1 : 0;
    die("only " + std::to_string(ready) + " of " + std::to_string(count) +
        " connections got their first answer (" + std::to_string(closed) + " closed by the server)");
  }
  std::printf("ready %ld\n", ready);
  std::fflush(stdout);

  std::string line;
  std::getline(std::cin, line);

  exchange(connections, 0, connections.size(), epoll_fd, request);
  long served = 0;
  long closed = 0;
  for (const Connection& c : connections) {
    served += c.done ? 1 : 0;
    closed += c.closed ? 1 : 0;
    ::close(c.fd);
  }
  std::printf("served %ld closed %ld\n", served, closed);
  return served == count ? 0 : 1;
}

// In-process HTTP server fixture and a raw-socket client for the server tests.
// The server runs its io_context on a thread of its own; the test thread speaks
// bytes over loopback with blocking sockets and bounded waits.
#pragma once

#include <multinode/http.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace multinode::http::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

class TestServer {
 public:
  explicit TestServer(Server::Handler handler, Options options = {}) : server_(std::move(handler), options) {
    namespace asio = boost::asio;
    asio::ip::tcp::acceptor acceptor(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port_ = acceptor.local_endpoint().port();
    std::vector<asio::ip::tcp::acceptor> listeners;
    listeners.push_back(std::move(acceptor));
    server_.start(io_, std::move(listeners));
    thread_ = std::thread([this] {
      io_.run();
      stopped_.set_value();
    });
  }

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  ~TestServer() {
    if (!thread_.joinable()) return;
    stop();
    if (stopped_future_.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "the server did not stop within 10 s";
      io_.stop();
    }
    thread_.join();
    server_.destroy_io_objects();  // as the runtime does before its io_context goes
  }

  std::uint16_t port() const noexcept { return port_; }
  boost::asio::io_context& io() noexcept { return io_; }

  // Runs f on the server's thread and waits for it (at most 10 s).
  template <typename F>
  void on_io(F f) {
    if (wait_stopped(0ms)) {
      f();  // the io thread is done: nothing runs beside us
      return;
    }
    auto done = std::make_shared<std::promise<void>>();
    auto ran = done->get_future();
    boost::asio::post(io_, [&f, done] {
      f();
      done->set_value();
    });
    // The io thread may end (a drained server's run() returns) before it takes the
    // handler: then nothing runs beside us and f runs here.
    for (int i = 0; i < 1000; ++i) {
      if (ran.wait_for(10ms) == std::future_status::ready) return;
      if (wait_stopped(0ms)) {
        if (ran.wait_for(0ms) != std::future_status::ready) f();
        return;
      }
    }
    ADD_FAILURE() << "io thread did not answer";
  }

  Stats stats() {
    Stats copy;
    on_io([&] { copy = server_.stats(); });
    return copy;
  }

  void stop() {
    boost::asio::post(io_, [this] { server_.stop(); });
  }

  // stop(), then count the server's on_drained calls (read with drained()).
  void stop_and_watch_drain() {
    boost::asio::post(io_, [this] {
      server_.stop();
      server_.on_drained([this] { ++drained_; });
    });
  }
  int drained() {
    int count = 0;
    on_io([&] { count = drained_; });
    return count;
  }

  // True once the io_context ran out of work: every connection is closed.
  bool wait_stopped(std::chrono::milliseconds timeout) {
    return stopped_future_.wait_for(timeout) == std::future_status::ready;
  }

 private:
  boost::asio::io_context io_{1};
  Server server_;
  std::uint16_t port_ = 0;
  int drained_ = 0;  // touched on the io thread only
  std::promise<void> stopped_;
  std::future<void> stopped_future_ = stopped_.get_future();
  std::thread thread_;
};

struct ClientResponse {
  int status = 0;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;
  bool chunked = false;

  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() && std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
            return std::tolower(a) == std::tolower(b);
          }))
        return v;
    }
    return {};
  }
  bool has_header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (strcasecmp(n.c_str(), std::string(name).c_str()) == 0) return true;
    return false;
  }
};

class Client {
 public:
  explicit Client(std::uint16_t port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ADD_FAILURE() << "connect: " << std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
    }
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }

  int fd() const noexcept { return fd_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Reads one response (a 1xx counts as one). nullopt when the connection closes
  // or the time runs out first.
  std::optional<ClientResponse> read_response(bool head_request = false,
                                              std::chrono::milliseconds timeout = 5s) {
    const auto deadline = steady::now() + timeout;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    ClientResponse response;
    std::string_view head(buffer_.data(), head_end + 2);
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    response.version = std::string(status_line.substr(0, 8));
    response.status = std::stoi(std::string(status_line.substr(9, 3)));
    std::size_t pos = line_end + 2;
    while (pos < head.size()) {
      const std::size_t end = head.find("\r\n", pos);
      const std::string_view line = head.substr(pos, end - pos);
      const std::size_t colon = line.find(':');
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
      pos = end + 2;
    }
    buffer_.erase(0, head_end + 4);
    const bool no_body =
        head_request || response.status / 100 == 1 || response.status == 204 || response.status == 304;
    if (no_body) return response;
    if (strcasecmp(response.header("Transfer-Encoding").c_str(), "chunked") == 0) {
      response.chunked = true;
      for (;;) {
        std::size_t eol;
        while ((eol = buffer_.find("\r\n")) == std::string::npos)
          if (!fill(deadline)) return std::nullopt;
        const std::size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
        if (size == 0) {
          buffer_.erase(0, eol + 2);
          // Trailers, then an empty line.
          for (;;) {
            while ((eol = buffer_.find("\r\n")) == std::string::npos)
              if (!fill(deadline)) return std::nullopt;
            if (eol == 0) {
              buffer_.erase(0, 2);
              return response;
            }
            const std::string line = buffer_.substr(0, eol);
            const std::size_t colon = line.find(':');
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            response.trailers.emplace_back(line.substr(0, colon), value);
            buffer_.erase(0, eol + 2);
          }
        }
        while (buffer_.size() < eol + 2 + size + 2)
          if (!fill(deadline)) return std::nullopt;
        response.body += buffer_.substr(eol + 2, size);
        buffer_.erase(0, eol + 2 + size + 2);
      }
    }
    const std::string length = response.header("Content-Length");
    if (!length.empty()) {
      const std::size_t size = std::stoul(length);
      while (buffer_.size() < size)
        if (!fill(deadline)) return std::nullopt;
      response.body = buffer_.substr(0, size);
      buffer_.erase(0, size);
      return response;
    }
    // Delimited by the end of the connection.
    while (fill(deadline)) {
    }
    if (!closed_) return std::nullopt;
    response.body = std::move(buffer_);
    buffer_.clear();
    return response;
  }

  // Waits for the server to close the connection; what arrived meanwhile is kept
  // in *rest. False when the time runs out first.
  bool wait_closed(std::chrono::milliseconds timeout = 5s, std::string* rest = nullptr) {
    const auto deadline = steady::now() + timeout;
    while (fill(deadline)) {
    }
    if (rest) *rest = buffer_;
    return closed_;
  }

  bool closed() const noexcept { return closed_; }
  const std::string& buffered() const noexcept { return buffer_; }
  // What was read and not consumed yet, for a client of another protocol built on this one.
  std::string& buffered() noexcept { return buffer_; }

  // Reads what is available into buffered(); false on timeout, error or end of stream.
  bool fill(steady::time_point deadline) {
    if (closed_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  bool closed_ = false;
};

// Runs a function when the scope ends: tests use it to drop Response handles on
// the server's thread before the server (and its io_context) goes away.
template <typename F>
class OnExit {
 public:
  explicit OnExit(F f) : f_(std::move(f)) {}
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;
  ~OnExit() { f_(); }

 private:
  F f_;
};

inline std::string get(std::string_view target = "/", std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

}  // namespace multinode::http::test

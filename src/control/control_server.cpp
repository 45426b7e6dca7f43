// The operator interface's connections (control_server.hpp).
#include "control/control_server.hpp"

#include "common/log.hpp"

#include <boost/asio/buffer.hpp>

#include <sys/socket.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <cstring>

namespace multinode::detail {
namespace {

using namespace std::chrono_literals;

// Accepted per wake-up at most, so that serving gets its turn between bursts.
constexpr int accept_burst_size = 16;

std::string http_response(std::string_view status, std::string_view body, bool with_body,
                          std::string_view extra_headers = {}) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += status.starts_with("200") ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8";
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  if (with_body) out += body;
  return out;
}

// A refusal that need not wait: one non-blocking send (the socket buffer of a
// new connection always has room for a line), then the caller closes.
void send_now(int fd, std::string_view text) {
  [[maybe_unused]] const auto sent = ::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

class ControlServer::Client : public std::enable_shared_from_this<Client> {
 public:
  Client(ControlServer& server, std::uint64_t id, int fd, Dialect dialect)
      : server_(&server), id_(id), dialect_(dialect), socket_(server.io_, fd), deadline_(server.io_) {}

  void start() {
    auto self = shared_from_this();
    deadline_.expires_after(server_->limits_.timeout);
    deadline_.async_wait([self](boost::system::error_code error) {
      if (error || self->state_ == State::done) return;
      if (self->state_ == State::reading) send_now(self->socket_.native_handle(), self->timeout_reply());
      self->finish();
    });
    read();
  }

  // The server stops: a client still sending its command goes now.
  void stop() {
    if (state_ == State::reading) finish();
  }
  // The server is going away: nothing may reach it any more.
  void detach() noexcept { server_ = nullptr; }

  ~Client() {
    boost::system::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
  }

 private:
  enum class State { reading, answering, writing, draining, done };

  std::string timeout_reply() const {
    const std::string seconds = std::to_string(server_ ? server_->limits_.timeout.count() : 0);
    if (dialect_ == Dialect::http_metrics) return http_response("408 Request Timeout", "", false);
    return "error: no complete command line within " + seconds + " ms (control_timeout): closing\n";
  }

  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(boost::asio::buffer(buffer_),
                            [self](boost::system::error_code error, std::size_t size) {
                              if (self->state_ != State::reading && self->state_ != State::draining) return;
                              if (error && error != boost::asio::error::eof) return self->finish();
                              if (self->state_ == State::draining) {
                                if (error) return self->finish();  // the client has read the reply
                                return self->read();
                              }
                              self->received_.append(self->buffer_.data(), size);
                              self->on_bytes(error == boost::asio::error::eof);
                            });
  }

  void on_bytes(bool at_end) {
    if (dialect_ == Dialect::command_line) {
      const CommandParse parse = parse_command(received_, at_end);
      switch (parse.outcome) {
        case CommandParse::Outcome::incomplete:
          return at_end ? finish() : read();
        case CommandParse::Outcome::error:
          state_ = State::answering;
          return send(parse.error + "\n");
        case CommandParse::Outcome::command:
          return answer(parse.command);
      }
      return;
    }
    switch (parse_metrics_request(received_)) {
      case MetricsRequest::incomplete:
        return at_end ? finish() : read();
      case MetricsRequest::get:
        return answer({CommandKind::metrics, 0});
      case MetricsRequest::head:
        head_ = true;
        return answer({CommandKind::metrics, 0});
      case MetricsRequest::not_found:
        state_ = State::answering;
        return send(http_response("404 Not Found", "only /metrics is served here\n", true));
      case MetricsRequest::method_not_allowed:
        state_ = State::answering;
        return send(
            http_response("405 Method Not Allowed", "GET or HEAD /metrics\n", true, "Allow: GET, HEAD\r\n"));
      case MetricsRequest::bad_request:
        state_ = State::answering;
        return send(http_response("400 Bad Request", "not an HTTP/1.1 request\n", true));
      case MetricsRequest::too_large:
        state_ = State::answering;
        return send(http_response("431 Request Header Fields Too Large",
                                  "request head over " + std::to_string(max_metrics_request) + " bytes\n",
                                  true));
    }
  }

  void answer(const Command& command) {
    state_ = State::answering;
    if (server_ == nullptr) return finish();
    std::weak_ptr<Client> weak = shared_from_this();
    server_->handler_(command, [weak](std::string text) {
      const auto self = weak.lock();
      if (!self || self->state_ != State::answering) return;  // timed out meanwhile
      if (self->dialect_ == Dialect::http_metrics) text = http_response("200 OK", text, !self->head_);
      self->send(std::move(text));
    });
  }

  void send(std::string text) {
    if (state_ != State::answering) return;
    state_ = State::writing;
    out_ = std::move(text);
    written_ = 0;
    write();
  }

  // send(2) with MSG_NOSIGNAL, not write(2) as a descriptor's async_write would:
  // a client gone before its reply must not SIGPIPE the master.
  void write() {
    while (written_ < out_.size()) {
      const ssize_t n = ::send(socket_.native_handle(), out_.data() + written_, out_.size() - written_,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        auto self = shared_from_this();
        socket_.async_wait(boost::asio::posix::descriptor_base::wait_write,
                           [self](boost::system::error_code error) {
                             if (self->state_ != State::writing) return;
                             if (error) return self->finish();
                             self->write();
                           });
        return;
      }
      if (n < 0) return finish();
      written_ += static_cast<std::size_t>(n);
    }
    // Half-close, then read what the client may still send until it closes:
    // closing with unread bytes would reset the connection and could destroy the
    // reply before the client read it.
    ::shutdown(socket_.native_handle(), SHUT_WR);
    state_ = State::draining;
    read();
  }

  void finish() {
    if (state_ == State::done) return;
    state_ = State::done;
    boost::system::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
    if (server_ != nullptr) server_->forget(id_);  // may destroy *this: last statement
  }

  ControlServer* server_;
  std::uint64_t id_;
  Dialect dialect_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::steady_timer deadline_;
  std::array<char, 1024> buffer_{};
  std::string received_;
  std::string out_;
  std::size_t written_ = 0;
  State state_ = State::reading;
  bool head_ = false;
};

ControlServer::ControlServer(boost::asio::io_context& io, Limits limits, Handler handler)
    : io_(io), limits_(limits), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  for (auto& [id, client] : clients_) client->detach();
  clients_.clear();
  for (auto& listener : listeners_) {
    boost::system::error_code ignored;
    listener->socket->close(ignored);
    listener->pause->cancel();
  }
}

void ControlServer::serve_commands(int listening_fd) {
  listen_on(listening_fd, Dialect::command_line);
}

void ControlServer::serve_metrics(int listening_fd) {
  listen_on(listening_fd, Dialect::http_metrics);
}

void ControlServer::listen_on(int fd, Dialect dialect) {
  auto listener = std::make_unique<Listener>();
  listener->dialect = dialect;
  listener->socket = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
  listener->socket->non_blocking(true);
  listener->pause = std::make_unique<boost::asio::steady_timer>(io_);
  listeners_.push_back(std::move(listener));
  if (!stopped_) wait_for_clients(*listeners_.back());
}

void ControlServer::wait_for_clients(Listener& listener) {
  listener.socket->async_wait(boost::asio::posix::descriptor_base::wait_read,
                              [this, &listener](boost::system::error_code error) {
                                if (error || stopped_) return;
                                accept_burst(listener);
                              });
}

void ControlServer::accept_burst(Listener& listener) {
  for (int i = 0; i < accept_burst_size; ++i) {
    const int fd =
        ::accept4(listener.socket->native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // Out of fds or memory (or worse): pause a moment instead of spinning on a
      // socket that stays readable. The serving loop goes on meanwhile.
      log(LogLevel::warning, "control socket: accept failed: ", std::strerror(errno), "; retrying in 100 ms");
      listener.pause->expires_after(100ms);
      listener.pause->async_wait([this, &listener](boost::system::error_code wait_error) {
        if (!wait_error && !stopped_) wait_for_clients(listener);
      });
      return;
    }
    if (clients_.size() >= limits_.max_clients) {
      send_now(fd, listener.dialect == Dialect::http_metrics
                       ? http_response("503 Service Unavailable", "too many clients\n", true)
                       : "error: too many control clients at once (control_max_clients = " +
                             std::to_string(limits_.max_clients) + "): try again\n");
      ::close(fd);
      continue;
    }
    const std::uint64_t id = next_client_++;
    auto client = std::make_shared<Client>(*this, id, fd, listener.dialect);
    clients_.emplace(id, client);
    client->start();
  }
  wait_for_clients(listener);
}

void ControlServer::forget(std::uint64_t id) noexcept {
  clients_.erase(id);
}

void ControlServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& listener : listeners_) {
    boost::system::error_code ignored;
    listener->socket->close(ignored);
    listener->pause->cancel();
  }
  // stop() may forget clients: iterate over a copy.
  std::vector<std::shared_ptr<Client>> all;
  for (auto& [id, client] : clients_) all.push_back(client);
  for (auto& client : all) client->stop();
}

}  // namespace multinode::detail

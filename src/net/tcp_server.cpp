#include <multinode/tcp.hpp>

#include "common/log.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace multinode::tcp {

Server::Server(Handler handler) : handler_(std::move(handler)) {}

void Server::start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) {
  listeners_ = std::move(listeners);
  pause_ = std::make_unique<boost::asio::steady_timer>(io);
  for (auto& acceptor : listeners_) {
    acceptor.non_blocking(true);
    accept(acceptor);
  }
}

void Server::accept(boost::asio::ip::tcp::acceptor& acceptor) {
  // Wait for readiness, then accept4() everything queued: one wake-up serves a burst,
  // and the sockets are born non-blocking and close-on-exec (no extra system calls).
  acceptor.async_wait(boost::asio::ip::tcp::acceptor::wait_read, [this, &acceptor](boost::system::error_code error) {
    if (error == boost::asio::error::operation_aborted || !acceptor.is_open()) return;
    if (error) {
      detail::log(detail::LogLevel::error, "accept wait failed: ", error.message());
      return;
    }
    const auto protocol = acceptor.local_endpoint().protocol();
    for (int burst = 0; burst < 64; ++burst) {
      const int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          // EMFILE and friends: the queued connection stays queued; try again shortly
          // rather than spin on a socket that stays readable.
          detail::log(detail::LogLevel::error, "accept failed: ", std::strerror(errno),
                      errno == EMFILE || errno == ENFILE ? " (raise the open-files limit, ulimit -n)" : "",
                      "; pausing accepts for 100 ms");
          pause_->expires_after(std::chrono::milliseconds(100));
          pause_->async_wait([this, &acceptor](boost::system::error_code error) {
            if (!error && acceptor.is_open()) accept(acceptor);
          });
          return;
        }
        break;
      }
      const int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      ++accepted_;
      boost::asio::ip::tcp::socket socket(acceptor.get_executor(), protocol, fd);
      handler_(std::move(socket));
      if (!acceptor.is_open()) return;  // the handler stopped the server
    }
    accept(acceptor);
  });
}

void Server::stop() {
  if (pause_) pause_->cancel();
  for (auto& acceptor : listeners_) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  }
}

void Server::destroy_io_objects() noexcept {
  listeners_.clear();
  pause_.reset();
}

}  // namespace multinode::tcp

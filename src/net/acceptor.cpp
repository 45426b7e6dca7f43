// Accepting in accept4() bursts for the TCP and HTTP servers (see acceptor.hpp).
#include "net/acceptor.hpp"

#include "common/log.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace multinode::detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

Acceptor::Acceptor(tcp::acceptor listener, Handler handler, std::string what)
    : state_(std::make_shared<State>()) {
  State& state = *state_;
  state.pause.emplace(listener.get_executor());
  state.listener.emplace(std::move(listener));
  state.handler = std::move(handler);
  state.what = std::move(what);
}

Acceptor::~Acceptor() {
  close();
}

void Acceptor::start() {
  if (state_->closed || !state_->listener) return;
  error_code ec;
  // accept4() must not block when another process of a shared socket took the connection.
  state_->listener->non_blocking(true, ec);
  wait(state_);
}

void Acceptor::wait(const std::shared_ptr<State>& state) {
  state->listener->async_wait(tcp::acceptor::wait_read, [state](const error_code& ec) {
    if (state->closed || ec == asio::error::operation_aborted) return;
    if (ec) {
      log(LogLevel::error, state->what, ": accept wait failed: ", ec.message());
      return;
    }
    accept_burst(state);
  });
}

void Acceptor::accept_burst(const std::shared_ptr<State>& state) {
  const int listener = state->listener->native_handle();
  const auto protocol = state->listener->local_endpoint().protocol();
  // Every attempt counts, failed ones too: the burst is bounded whatever accept4() says.
  for (int attempt = 0; attempt < burst; ++attempt) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) break;
      // A client that gave up before we accepted it is no reason to pause; nor are the
      // network errors Linux passes on from the new connection (accept(2), "Error handling").
      if (error == EINTR || error == ECONNABORTED || error == EPROTO || error == ENETDOWN ||
          error == ENOPROTOOPT || error == EHOSTDOWN || error == ENONET || error == EHOSTUNREACH ||
          error == EOPNOTSUPP || error == ENETUNREACH)
        continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM (and anything unexpected): the queued
      // connection stays queued and the socket stays readable, so waiting again at
      // once would spin.
      pause(state, error);
      return;
    }
    // Responses go out whole: nothing to gain from Nagle.
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    error_code ec;
    tcp::socket socket(state->listener->get_executor());
    socket.assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    state->handler(std::move(socket));
    if (state->closed) return;  // the handler stopped the server
  }
  wait(state);
}

void Acceptor::pause(const std::shared_ptr<State>& state, int error) {
  log(LogLevel::warning, state->what, ": accept failed: ", std::strerror(error),
      error == EMFILE || error == ENFILE ? " (raise the open-files limit, ulimit -n)" : "",
      "; pausing accepts for 100 ms");
  state->pause->expires_after(std::chrono::milliseconds(100));
  state->pause->async_wait([state](const error_code& ec) {
    if (!ec && !state->closed) wait(state);
  });
}

void Acceptor::close() noexcept {
  if (!state_) return;
  State& state = *state_;
  state.closed = true;
  error_code ec;
  if (state.pause) state.pause->cancel();
  if (state.listener) state.listener->close(ec);
}

bool Acceptor::closed() const noexcept {
  return state_->closed;
}

void Acceptor::destroy_io_objects() noexcept {
  close();
  state_->listener.reset();
  state_->pause.reset();
}

}  // namespace multinode::detail

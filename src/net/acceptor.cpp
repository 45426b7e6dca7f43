// Accepting in accept4() bursts for the TCP and HTTP servers (see acceptor.hpp).
#include "net/acceptor.hpp"

#include "common/log.hpp"
#include "net/balance.hpp"

#include <boost/asio/post.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
  state.fallback.emplace(listener.get_executor());
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
  if (AcceptBalance* balance = AcceptBalance::current()) {
    std::weak_ptr<State> weak = state_;
    state_->balance_key = balance->add_acceptor([weak] {
      if (auto state = weak.lock(); state && !state->closed) accept_burst(state);
    });
  }
  // Connections may be queued already (left by the others for a process that was
  // about to start): the edge-triggered wait alone would not see them until the next one.
  boost::asio::post(state_->listener->get_executor(), [state = state_] {
    if (!state->closed) accept_burst(state);
  });
}

void Acceptor::wait(const std::shared_ptr<State>& state) {
  if (state->waiting) return;  // a doorbell's burst ends here too, while the wait is pending
  state->waiting = true;
  state->listener->async_wait(tcp::acceptor::wait_read, [state](const error_code& ec) {
    state->waiting = false;
    if (state->closed || ec == asio::error::operation_aborted) return;
    if (ec) {
      log(LogLevel::error, state->what, ": accept wait failed: ", ec.message());
      return;
    }
    accept_burst(state);
  });
}

void Acceptor::accept_burst(const std::shared_ptr<State>& state, bool balanced) {
  const int listener = state->listener->native_handle();
  error_code endpoint_error;
  const auto protocol = state->listener->local_endpoint(endpoint_error).protocol();
  AcceptBalance* balance = AcceptBalance::current();
  // Every attempt counts, failed ones too: the burst is bounded whatever accept4() says.
  for (int attempt = 0; attempt < burst; ++attempt) {
    if (balanced && balance != nullptr && !balance->may_accept()) {
      // Enough here: the connection waits in the queue for another process. No wait
      // on the listener now (Asio re-arms it with EPOLL_CTL_MOD, which reports a
      // non-empty queue at once: this process would spin): a wake-up from the others,
      // a connection of its own closing, or the fallback brings it back.
      balance->declined();
      arm_fallback(state);
      return;
    }
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        wait(state);
        return;
      }
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
    if (balance != nullptr) balance->accepted();
  }
  // A whole burst taken, and more may be queued: the edge-triggered wait would not
  // report those before the next connection arrives. Go on after the others' turn.
  boost::asio::post(state->listener->get_executor(), [state, balanced] {
    if (!state->closed) accept_burst(state, balanced);
  });
  wait(state);
}

void Acceptor::arm_fallback(const std::shared_ptr<State>& state) {
  if (state->fallback_armed) return;
  state->fallback_armed = true;
  state->fallback->expires_after(BalanceTable::fallback_wait);
  state->fallback->async_wait([state](const error_code& ec) {
    state->fallback_armed = false;
    if (ec || state->closed) return;
    pollfd queued{state->listener->native_handle(), POLLIN, 0};
    if (::poll(&queued, 1, 0) != 1 || (queued.revents & POLLIN) == 0) {
      wait(state);  // nothing left behind: back to waiting for connections
      return;
    }
    // Still queued this long: the process that should have taken it is stuck (or
    // hung, until the heartbeat catches it). Take what is there, balanced or not.
    AcceptBalance* balance = AcceptBalance::current();
    accept_burst(state, balance != nullptr && balance->may_accept());
  });
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
  if (state.fallback) state.fallback->cancel();
  if (state.balance_key != 0) {
    if (AcceptBalance* balance = AcceptBalance::current()) balance->remove_acceptor(state.balance_key);
    state.balance_key = 0;
  }
  if (state.listener) state.listener->close(ec);
}

bool Acceptor::closed() const noexcept {
  return state_->closed;
}

void Acceptor::destroy_io_objects() noexcept {
  close();
  state_->listener.reset();
  state_->pause.reset();
  state_->fallback.reset();
}

}  // namespace multinode::detail

// multinode::tcp::Server: one Acceptor per listening socket, each accepted socket
// handed to the application.
#include <multinode/tcp.hpp>

#include "net/acceptor.hpp"

#include <utility>

namespace multinode::tcp {

struct Server::Impl {
  Handler handler;
  std::vector<std::unique_ptr<detail::Acceptor>> acceptors;
  std::uint64_t accepted = 0;
};

Server::Server(Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
}

Server::~Server() = default;

void Server::start(boost::asio::io_context&, std::vector<boost::asio::ip::tcp::acceptor> listeners) {
  Impl& impl = *impl_;
  for (auto& listener : listeners) {
    impl.acceptors.push_back(std::make_unique<detail::Acceptor>(
        std::move(listener),
        [&impl](boost::asio::ip::tcp::socket socket) {
          ++impl.accepted;
          impl.handler(std::move(socket));
        },
        "tcp"));
  }
  for (auto& acceptor : impl.acceptors) acceptor->start();
}

void Server::stop() {
  for (auto& acceptor : impl_->acceptors) acceptor->close();
}

void Server::destroy_io_objects() noexcept {
  for (auto& acceptor : impl_->acceptors) acceptor->destroy_io_objects();
  impl_->acceptors.clear();
}

ServerCounters Server::counters() const noexcept {
  return {0, impl_->accepted};
}

std::uint64_t Server::accepted() const noexcept {
  return impl_->accepted;
}

}  // namespace multinode::tcp

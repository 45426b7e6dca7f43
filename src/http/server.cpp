// multinode::http::Server: accepting, the list of open connections, the sweep
// that enforces every timeout, graceful stop.
#include "http/server_impl.hpp"

#include "common/log.hpp"
#include "http/connection.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace multinode::http {

namespace detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

ServerImpl::ServerImpl(Server::Handler handler, Options options)
    : handler_(std::move(handler)), options_(std::move(options)) {
  // One coarse timer serves every connection's deadlines: a quarter of the
  // shortest timeout, between 5 ms and one second.
  const auto shortest = std::min({options_.header_timeout, options_.body_timeout, options_.idle_timeout,
                                  options_.write_timeout, options_.linger_timeout, options_.stop_grace});
  sweep_period_ = std::clamp<Clock::duration>(shortest / 4, std::chrono::milliseconds(5), std::chrono::seconds(1));
}

ServerImpl::~ServerImpl() = default;

void ServerImpl::start(asio::io_context& io, std::vector<tcp::acceptor> listeners) {
  io_ = &io;
  listeners_ = std::move(listeners);
  sweep_timer_ = std::make_unique<asio::steady_timer>(io);
  accept_retry_timers_.clear();
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    accept_retry_timers_.push_back(std::make_unique<asio::steady_timer>(io));
    accept(i);
  }
}

void ServerImpl::accept(std::size_t index) {
  if (stopping_) return;
  listeners_[index].async_accept([self = shared_from_this(), index](const error_code& ec, tcp::socket socket) {
    if (self->stopping_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // A client that gave up before we accepted it is no reason to pause.
      if (ec == asio::error::connection_aborted || ec == asio::error::interrupted) {
        self->accept(index);
        return;
      }
      // Out of descriptors or memory: accepting again at once would spin.
      multinode::detail::log(multinode::detail::LogLevel::warning, "http: accept failed: ", ec.message(),
                             "; retrying in 100 ms");
      self->retry_accept_later(index);
      return;
    }
    self->refresh_clock();
    ++self->stats_.connections_accepted;
    auto* connection = new Connection(self, std::move(socket));
    connection->start();
    self->accept(index);
  });
}

void ServerImpl::retry_accept_later(std::size_t index) {
  auto& timer = *accept_retry_timers_[index];
  timer.expires_after(std::chrono::milliseconds(100));
  timer.async_wait([self = shared_from_this(), index](const error_code& ec) {
    if (!ec) self->accept(index);
  });
}

void ServerImpl::link(Connection* connection) noexcept {
  connection->previous_ = nullptr;
  connection->next_ = first_;
  if (first_) first_->previous_ = connection;
  first_ = connection;
  ++open_;
  stats_.connections_open = open_;
  arm_sweep();
}

void ServerImpl::unlink(Connection* connection) noexcept {
  if (connection->previous_)
    connection->previous_->next_ = connection->next_;
  else if (first_ == connection)
    first_ = connection->next_;
  if (connection->next_) connection->next_->previous_ = connection->previous_;
  connection->previous_ = connection->next_ = nullptr;
}

void ServerImpl::connection_closed() noexcept {
  --open_;
  stats_.connections_open = open_;
  if (open_ > 0) return;
  if (sweep_armed_) {
    // Nothing left to watch: let the io_context run out of work.
    ++sweep_generation_;
    sweep_armed_ = false;
    sweep_timer_->cancel();
  }
  if (stopping_ && !drained_handlers_.empty() && io_ != nullptr) {
    // Posted: the last connection may be closing from deep inside its own handler.
    for (auto& done : drained_handlers_) asio::post(*io_, std::move(done));
    drained_handlers_.clear();
  }
}

void ServerImpl::on_drained(std::function<void()> done) {
  if (stopping_ && open_ == 0) {
    if (io_ != nullptr)
      asio::post(*io_, std::move(done));
    else
      done();
    return;
  }
  drained_handlers_.push_back(std::move(done));
}

void ServerImpl::arm_sweep() {
  if (sweep_armed_ || !sweep_timer_) return;
  sweep_armed_ = true;
  const std::uint64_t generation = ++sweep_generation_;
  sweep_timer_->expires_after(sweep_period_);
  sweep_timer_->async_wait([self = shared_from_this(), generation](const error_code& ec) {
    if (generation != self->sweep_generation_) return;  // cancelled, maybe re-armed since
    self->sweep_armed_ = false;
    if (ec) return;
    self->sweep();
  });
}

void ServerImpl::sweep() {
  const Clock::time_point now = refresh_clock();
  // Closing a connection may delete it, never another one: step to the next first.
  for (Connection* connection = first_; connection != nullptr;) {
    Connection* next = connection->next_;
    connection->add_ref();
    connection->check_deadlines(now);
    connection->release();
    connection = next;
  }
  if (open_ > 0) arm_sweep();
}

void ServerImpl::stop() {
  if (stopping_) return;
  stopping_ = true;
  error_code ec;
  for (auto& listener : listeners_) listener.close(ec);
  for (auto& timer : accept_retry_timers_) timer->cancel();
  refresh_clock();
  for (Connection* connection = first_; connection != nullptr;) {
    Connection* next = connection->next_;
    connection->add_ref();
    connection->on_server_stop();
    connection->release();
    connection = next;
  }
}

void ServerImpl::shutdown() {
  stop();
  for (Connection* connection = first_; connection != nullptr;) {
    Connection* next = connection->next_;
    connection->add_ref();
    connection->close_now();
    connection->release();
    connection = next;
  }
}

void ServerImpl::release() noexcept {
  shutdown();
  // Connections still referenced (by Response handles, or by handlers the
  // io_context will destroy) lose their sockets now; they are closed already.
  for (Connection* connection = first_; connection != nullptr;) {
    Connection* next = connection->next_;
    connection->add_ref();
    connection->release_socket();
    connection->release();
    connection = next;
  }
  listeners_.clear();
  accept_retry_timers_.clear();
  sweep_timer_.reset();
  sweep_armed_ = false;
  drained_handlers_.clear();
  io_ = nullptr;
}

}  // namespace detail

Server::Server(Handler handler, Options options)
    : impl_(std::make_shared<detail::ServerImpl>(std::move(handler), std::move(options))) {}

Server::~Server() {
  if (impl_) impl_->shutdown();
}

void Server::start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) {
  impl_->start(io, std::move(listeners));
}

void Server::stop() { impl_->stop(); }

void Server::on_drained(std::function<void()> done) { impl_->on_drained(std::move(done)); }

void Server::destroy_io_objects() noexcept { impl_->release(); }

const Options& Server::options() const noexcept { return impl_->options(); }

const Stats& Server::stats() const noexcept { return impl_->stats(); }

}  // namespace multinode::http

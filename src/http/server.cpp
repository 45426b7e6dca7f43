// multinode::http::Server: accepting (net/acceptor.hpp, shared with the TCP
// server), the list of open connections, the sweep that enforces every timeout,
// graceful stop.
#include "http/server_impl.hpp"

#include "http/connection.hpp"
#include "http/parser.hpp"
#include "net/balance.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace multinode::http {

namespace detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t spare_buffers = 16;
// An output buffer a large response grew beyond this is freed, not kept.
constexpr std::size_t kept_output_bytes = std::size_t{64} * 1024;

}  // namespace

struct ServerImpl::Connections : multinode::detail::IntrusiveList<Connection, &Connection::list_hook_> {};

ServerImpl::ServerImpl(Server::Handler handler, Options options)
    : handler_(std::move(handler)),
      options_(std::move(options)),
      // A few spares cover the connections busy at one moment: a synchronous handler
      // gives its buffers back before the next connection's bytes are read.
      input_pool_(spare_buffers, RequestReader::initial_capacity(options_), &stats_.input_buffers),
      output_pool_(spare_buffers, kept_output_bytes, &stats_.output_buffers),
      exchange_pool_(options_, input_pool_, output_pool_, spare_buffers, &stats_.exchange_states),
      connections_(std::make_unique<Connections>()) {
  // One coarse timer serves every connection's deadlines: a quarter of the
  // shortest timeout, between 5 ms and one second.
  const auto shortest = std::min({options_.header_timeout, options_.body_timeout, options_.idle_timeout,
                                  options_.write_timeout, options_.linger_timeout, options_.stop_grace});
  sweep_period_ =
      std::clamp<Clock::duration>(shortest / 4, std::chrono::milliseconds(5), std::chrono::seconds(1));
}

ServerImpl::~ServerImpl() = default;

void ServerImpl::start(asio::io_context& io, std::vector<tcp::acceptor> listeners) {
  io_ = &io;
  sweep_timer_ = std::make_unique<asio::steady_timer>(io);
  acceptors_.clear();
  for (auto& listener : listeners) {
    // The acceptors are this object's members and closed before it goes (close_all()):
    // a raw pointer is enough, an accepted connection takes its own reference.
    acceptors_.push_back(std::make_unique<multinode::detail::Acceptor>(
        std::move(listener), [this](tcp::socket socket) { on_accepted(std::move(socket)); }, "http"));
  }
  for (auto& acceptor : acceptors_) acceptor->start();
}

void ServerImpl::on_accepted(tcp::socket socket) {
  if (stopping_) return;
  refresh_clock();
  ++stats_.connections_accepted;
  auto* connection = new Connection(shared_from_this(), std::move(socket));
  connection->start();
}

void ServerImpl::link(Connection& connection) noexcept {
  connections_->push_front(connection);
  ++open_;
  stats_.connections_open = open_;
  arm_sweep();
}

void ServerImpl::unlink(Connection& connection) noexcept {
  connections_->erase(connection);
}

void ServerImpl::connection_closed() noexcept {
  --open_;
  stats_.connections_open = open_;
  // Even balancing (net/balance.hpp): the others see this process's load drop now.
  if (auto* balance = multinode::detail::AcceptBalance::current()) balance->closed();
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

void ServerImpl::adopt(Connection&, TakenOver& owner) noexcept {
  owner.server_ = shared_from_this();
  owner.previous_ = nullptr;
  owner.next_ = taken_over_;
  if (taken_over_ != nullptr) taken_over_->previous_ = &owner;
  taken_over_ = &owner;
}

void ServerImpl::release(TakenOver& owner) noexcept {
  if (taken_over_cursor_ == &owner) taken_over_cursor_ = owner.next_;
  if (owner.previous_ != nullptr)
    owner.previous_->next_ = owner.next_;
  else
    taken_over_ = owner.next_;
  if (owner.next_ != nullptr) owner.next_->previous_ = owner.previous_;
  owner.previous_ = owner.next_ = nullptr;
  connection_closed();
}

template <typename F>
void ServerImpl::for_each_taken_over(F f) {
  for (TakenOver* owner = taken_over_; owner != nullptr; owner = taken_over_cursor_) {
    taken_over_cursor_ = owner->next_;
    f(*owner);
  }
  taken_over_cursor_ = nullptr;
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

template <typename F>
void ServerImpl::for_each_connection(F f) {
  // Closing a connection may delete it, never another one: the list steps to the
  // next first, and the reference keeps this one until f is done with it.
  connections_->for_each([&f](Connection& connection) {
    connection.add_ref();
    f(connection);
    connection.drop_ref();
  });
}

void ServerImpl::sweep() {
  const Clock::time_point now = refresh_clock();
  for_each_connection([now](Connection& connection) { connection.check_deadlines(now); });
  for_each_taken_over([now](TakenOver& owner) { owner.check_deadlines(now); });
  if (open_ > 0) arm_sweep();
}

void ServerImpl::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& acceptor : acceptors_) acceptor->close();
  refresh_clock();
  for_each_connection([](Connection& connection) { connection.on_server_stop(); });
  for_each_taken_over([](TakenOver& owner) { owner.on_server_stop(); });
}

void ServerImpl::close_all() {
  stop();
  for_each_connection([](Connection& connection) { connection.close_now(); });
  for_each_taken_over([](TakenOver& owner) { owner.destroy_io_objects(); });
}

void ServerImpl::destroy_io_objects() noexcept {
  close_all();
  // Connections still referenced (by Response handles, or by handlers the
  // io_context will destroy) lose their sockets now; they are closed already.
  for_each_connection([](Connection& connection) { connection.destroy_io_objects(); });
  for (auto& acceptor : acceptors_) acceptor->destroy_io_objects();
  acceptors_.clear();
  sweep_timer_.reset();
  sweep_armed_ = false;
  drained_handlers_.clear();
  io_ = nullptr;
}

}  // namespace detail

TakenOver::~TakenOver() {
  release();
}

void TakenOver::release() noexcept {
  if (!server_) return;
  // The server may go with the last reference: keep it for the call.
  const std::shared_ptr<detail::ServerImpl> server = std::move(server_);
  server_.reset();
  server->release(*this);
}

bool TakenOver::server_stopping() const noexcept {
  return server_ && server_->stopping();
}

Server::Server(Handler handler, Options options)
    : impl_(std::make_shared<detail::ServerImpl>(std::move(handler), std::move(options))) {}

Server::~Server() {
  if (impl_) impl_->close_all();
}

void Server::start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) {
  impl_->start(io, std::move(listeners));
}

void Server::stop() {
  impl_->stop();
}

void Server::on_drained(std::function<void()> done) {
  impl_->on_drained(std::move(done));
}

void Server::destroy_io_objects() noexcept {
  impl_->destroy_io_objects();
}

const Options& Server::options() const noexcept {
  return impl_->options();
}

ServerCounters Server::counters() const noexcept {
  const Stats& figures = impl_->stats();
  return {figures.connections_open, figures.requests};
}

const Stats& Server::stats() const noexcept {
  return impl_->stats();
}

}  // namespace multinode::http

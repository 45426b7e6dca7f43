// multinode::listen() and the Nodes handle: a thin face over detail::Runtime.
#include <multinode/nodes.hpp>

#include "core/runtime.hpp"

namespace multinode {

namespace detail {
// listen()'s way to the private constructor.
struct NodesAccess {
  static Nodes start(const Options& options, Server* server) {
    auto runtime = std::make_unique<Runtime>(options, server);
    runtime->start();
    return Nodes(std::move(runtime));
  }
  static Nodes start(const Options& options, Server* server, std::error_code& error) {
    try {
      Nodes nodes = start(options, server);
      error.clear();
      return nodes;
    } catch (const std::system_error& e) {
      error = e.code();
      return Nodes();
    }
  }
};
}  // namespace detail

Nodes::Nodes() noexcept = default;
Nodes::Nodes(std::unique_ptr<detail::Runtime> runtime) : runtime_(std::move(runtime)) {}
Nodes::Nodes(Nodes&&) noexcept = default;
Nodes& Nodes::operator=(Nodes&&) noexcept = default;
Nodes::~Nodes() = default;

bool Nodes::is_master() const noexcept {
  return runtime_->is_master();
}
NodeId Nodes::id() const noexcept {
  return runtime_->id();
}
unsigned Nodes::slot() const noexcept {
  return runtime_->slot();
}
std::uint16_t Nodes::local_port() const noexcept {
  return runtime_->port();
}
boost::asio::io_context& Nodes::io_context() noexcept {
  return runtime_->io();
}

int Nodes::run() {
  return runtime_->run();
}
void Nodes::stop() {
  runtime_->begin_stop("stop() was called", 0);
}
void Nodes::on_stop(std::function<void()> handler) {
  runtime_->add_stop_handler(std::move(handler));
}

void Nodes::on_worker_started(std::function<void(const WorkerInfo&)> handler) {
  runtime_->set_worker_started_handler(std::move(handler));
}
void Nodes::on_worker_ready(std::function<void(const WorkerInfo&)> handler) {
  runtime_->set_worker_ready_handler(std::move(handler));
}
void Nodes::on_worker_exit(std::function<void(const WorkerExit&)> handler) {
  runtime_->set_worker_exit_handler(std::move(handler));
}

void Nodes::on_node(std::function<void(Stream)> handler) {
  runtime_->set_node_handler(std::move(handler));
}
std::vector<Stream> Nodes::peers() const {
  return runtime_->peers();
}

void Nodes::broadcast(const Message& message) {
  for (auto& stream : runtime_->peers()) {
    frame_stream(stream, runtime_->options().max_frame_size).send(message);
  }
}

bool Nodes::send_to(NodeId peer, const Message& message) {
  auto stream = runtime_->peer(peer);
  if (!stream) return false;
  frame_stream(*stream, runtime_->options().max_frame_size).send(message);
  return true;
}

bool Nodes::publish(std::string_view channel, const Message& message) {
  auto* bridge = runtime_->bridge();
  return bridge != nullptr && bridge->publish(channel, message);
}
void Nodes::subscribe(std::string_view channel,
                      std::function<void(const Message&, const BridgeOrigin&)> handler, BridgeScope scope) {
  if (auto* bridge = runtime_->bridge()) bridge->subscribe(channel, std::move(handler), scope);
}
void Nodes::on_bridge_state(std::function<void(BridgeLinkState)> handler) {
  if (auto* bridge = runtime_->bridge()) bridge->on_state(std::move(handler));
}
std::uint64_t Nodes::host_id() const noexcept {
  return runtime_->host_id();
}
BridgeCounters Nodes::bridge_counters() const {
  auto* bridge = runtime_->bridge();
  return bridge != nullptr ? bridge->counters() : BridgeCounters{};
}

std::vector<boost::asio::ip::tcp::acceptor> Nodes::take_listeners() {
  return runtime_->take_listeners();
}

Nodes listen(const Options& options, Server& server) {
  return detail::NodesAccess::start(options, &server);
}
Nodes listen(const Options& options) {
  return detail::NodesAccess::start(options, nullptr);
}
Nodes listen(const Options& options, Server& server, std::error_code& error) {
  return detail::NodesAccess::start(options, &server, error);
}
Nodes listen(const Options& options, std::error_code& error) {
  return detail::NodesAccess::start(options, nullptr, error);
}

}  // namespace multinode

// The state behind a Nodes handle: identity, the event loop, this process's
// listening sockets, the mesh streams, and the graceful-stop sequence shared by
// master and workers. The master adds a Supervisor; a worker a WorkerLink.
#pragma once

#include <multinode/nodes.hpp>

#include "net/listeners.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail {

class Supervisor;
class WorkerLink;

class Runtime {
 public:
  Runtime(const Options& options, Server* server);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Sets up this process as the master or, when started by a master, as a worker.
  void start();

  const Options& options() const noexcept { return options_; }
  boost::asio::io_context& io() noexcept { return io_; }
  bool is_master() const noexcept { return is_master_; }
  NodeId id() const noexcept { return id_; }
  unsigned slot() const noexcept { return slot_; }
  std::uint16_t port() const noexcept { return port_; }
  bool stopping() const noexcept { return stopping_; }

  int run();
  // Begins the graceful stop (idempotent). exit_status is what run() returns.
  void begin_stop(const std::string& reason, int exit_status = 0);

  // Mesh: a stream to another process arrived (fd owned from now on).
  void add_peer(int fd, NodeId peer, unsigned peer_slot);
  void set_node_handler(std::function<void(Stream)> handler);
  std::vector<Stream> peers();
  std::optional<Stream> peer(NodeId id);

  std::vector<boost::asio::ip::tcp::acceptor> take_listeners();

  std::function<void(const WorkerInfo&)> on_worker_started;
  std::function<void(const WorkerInfo&)> on_worker_ready;
  std::function<void(const WorkerExit&)> on_worker_exit;
  std::vector<std::function<void()>> on_stop;

 private:
  void start_master();
  void start_worker();
  void start_serving(const std::vector<int>& fds, bool duplicate);
  void watch_signals();
  void close_peers();
  void wait_for_signal();

  Options options_;
  Server* server_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_};
  bool is_master_ = true;
  NodeId id_ = 0;
  unsigned slot_ = 0;
  std::uint16_t port_ = 0;

  // This process's own listening fds (the master's are owned by the Supervisor).
  std::vector<int> own_listen_fds_;
  bool serving_ = false;

  std::map<NodeId, Stream> peers_;
  std::vector<Stream> undelivered_peers_;
  std::function<void(Stream)> node_handler_;

  bool stopping_ = false;
  bool peers_closed_ = false;
  int exit_status_ = 0;
  std::chrono::steady_clock::time_point stop_deadline_{};

  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<WorkerLink> worker_;
};

}  // namespace multinode::detail

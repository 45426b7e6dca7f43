// The state behind a Nodes handle: identity, the event loop, this process's
// listening sockets, the mesh streams, and the graceful-stop sequence shared by
// master and workers. The master adds a Supervisor; a worker a WorkerLink.
#pragma once

#include <multinode/nodes.hpp>

#include "bridge/bridge.hpp"
#include "common/log.hpp"
#include "common/privileges.hpp"
#include "common/sd_notify.hpp"
#include "control/control_server.hpp"
#include "net/balance.hpp"
#include "net/listeners.hpp"
#include "supervisor/supervisor.hpp"
#include "worker/run_mesh.hpp"
#include "worker/worker_link.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail {

// The host of the supervisor (in the master), of the worker link (in a worker) and
// of the mesh broker's client (in a worker of `multinode run`): they reach the
// runtime only through those interfaces.
class Runtime final : public Supervisor::Host, public WorkerLink::Host, public RunMesh::Host {
 public:
  Runtime(const Options& options, Server* server);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Sets up this process as the master or, when started by a master, as a worker.
  void start();

  const Options& options() const noexcept override { return options_; }
  boost::asio::io_context& io() noexcept override { return io_; }
  // Nodes::is_master(): the original process, or in a worker of `multinode run` the
  // holder of the mesh's master role (MULTINODE_MASTER=1, or a `master` record since).
  bool is_master() const noexcept { return run_worker_ ? master_role_ : is_master_; }
  NodeId id() const noexcept override { return id_; }
  unsigned slot() const noexcept override { return slot_; }
  std::uint16_t port() const noexcept { return port_; }
  bool stopping() const noexcept override { return stopping_; }

  int run();
  // Begins the graceful stop (idempotent). exit_status is what run() returns.
  void begin_stop(const std::string& reason, int exit_status) override;

  // Mesh: a stream to another process arrived (fd owned from now on).
  void add_peer(int fd, NodeId peer, unsigned peer_slot) override;
  void set_node_handler(std::function<void(Stream)> handler);
  std::vector<Stream> peers();
  std::optional<Stream> peer(NodeId id);

  std::vector<boost::asio::ip::tcp::acceptor> take_listeners();

  // Options::bridge: this process's link to Redis (null without one), and the
  // host's id, random in the master and inherited by its workers.
  Bridge* bridge() noexcept { return bridge_.get(); }
  std::uint64_t host_id() const noexcept { return host_id_; }

  // The user's handlers (Nodes::on_worker_started and the like).
  void set_worker_started_handler(std::function<void(const WorkerInfo&)> handler);
  void set_worker_ready_handler(std::function<void(const WorkerInfo&)> handler);
  void set_worker_exit_handler(std::function<void(const WorkerExit&)> handler);
  void add_stop_handler(std::function<void()> handler);

 private:
  // Supervisor::Host: the supervisor's events, handed to the user's handlers.
  void worker_started(const WorkerInfo& worker) override;
  void worker_ready(const WorkerInfo& worker) override;
  void worker_exited(const WorkerExit& exit) override;
  // Supervisor::Host: what the master tells systemd (NOTIFY_SOCKET, docs/systemd.md).
  void workers_ready() override;
  void rolling_restart_began(unsigned slots) override;
  void rolling_restart_progress(unsigned replaced, unsigned slots) override;
  void rolling_restart_done() override;
  std::optional<ServerCounters> master_counters() const override;
  // WorkerLink::Host: what this worker's server has done, for the master's status.
  ServerCounters server_counters() const noexcept override;
  // And its link to Redis (Options::bridge): none without one.
  std::optional<BridgeCounters> bridge_counters() const override;
  // The operator interface (src/core/operations.cpp): the control socket and GET
  // /metrics, bound before the privilege drop, closed when the stop begins.
  void start_operator_interface(const std::optional<Identity>& identity);
  void stop_operator_interface();
  void remove_control_socket() noexcept;
  void operator_command(const Command& command, ControlServer::Reply reply);
  // "serving on 127.0.0.1:8080 with 4 processes", the STATUS= of READY=1.
  std::string serving_status() const;
  // WATCHDOG=1 every half WATCHDOG_USEC from this loop, while the supervisor is healthy.
  void arm_watchdog();

  void start_master();
  void start_bridge();
  void start_worker();
  // Started by `multinode run` (MULTINODE_ID without MULTINODE_WORKER_ID): serves the
  // LISTEN_FDS sockets in this one process and joins the mesh when MULTINODE_MESH is set.
  void start_run_worker();
  // RunMesh::Host: the supervisor's `master` record.
  void master_role_granted() override;
  // Options::max_requests: this worker's own limit (with jitter), watched by the worker link.
  void watch_request_limit();
  void start_serving(const std::vector<int>& fds, bool duplicate);
  void watch_signals();
  void close_peers();
  void wait_for_signal();

  Options options_;
  Server* server_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_};
  bool is_master_ = true;  // this process supervises (the original process of a library program)
  bool run_worker_ = false;
  bool master_role_ = false;  // a worker of `multinode run` only
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

  std::function<void(const WorkerInfo&)> on_worker_started_;
  std::function<void(const WorkerInfo&)> on_worker_ready_;
  std::function<void(const WorkerExit&)> on_worker_exit_;
  std::vector<std::function<void()>> on_stop_;

  LogReopenFanout log_reopen_;  // the master: SIGUSR1 reaches every ready worker
  // The master's: systemd's notification socket (disabled without NOTIFY_SOCKET),
  // the watchdog's timer and where the master serves, for STATUS= lines. A worker of
  // `multinode run` has them too: its supervisor's NOTIFY_SOCKET and WATCHDOG_USEC.
  SdNotifier notifier_;
  std::unique_ptr<boost::asio::steady_timer> watchdog_timer_;
  std::string serving_on_;

  // Even balancing over shared sockets (net/balance.hpp): the table (the master
  // creates it and gives each worker an entry) and this process's use of it.
  BalanceTable balance_table_;
  std::unique_ptr<AcceptBalance> accept_balance_;

  std::uint64_t host_id_ = 0;
  std::unique_ptr<Bridge> bridge_;

  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<WorkerLink> worker_;
  std::unique_ptr<RunMesh> run_mesh_;

  // The master's operator interface, and the socket file it bound (removed at the
  // stop, if it is still the one bound: same device and inode).
  std::unique_ptr<ControlServer> control_server_;
  std::string control_path_;
  dev_t control_device_ = 0;
  ino_t control_inode_ = 0;
};

}  // namespace multinode::detail

// multinode::listen() and the handle it returns: which process this is, the event
// loop, supervision events in the master, and the streams to every other process.
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/frame.hpp>
#include <multinode/options.hpp>
#include <multinode/server.hpp>
#include <multinode/stream.hpp>
#include <multinode/workers.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <memory>
#include <string_view>
#include <system_error>
#include <vector>

namespace multinode {

namespace detail {
class Runtime;
struct NodesAccess;
}  // namespace detail

// This process's handle, returned by listen(). An empty handle (default-constructed,
// or returned by a listen() that failed with an error_code) is false; only its
// destruction, assignment and operator bool may be used.
class Nodes {
 public:
  Nodes() noexcept;
  Nodes(Nodes&&) noexcept;
  Nodes& operator=(Nodes&&) noexcept;
  ~Nodes();

  // False for an empty handle: listen() failed.
  explicit operator bool() const noexcept { return runtime_ != nullptr; }

  // True in the original process, the one the user started. In a worker of
  // `multinode run` (docs/cli.md): true while it holds the mesh's master role
  // (started with MULTINODE_MASTER=1, or handed it since), in one worker at a time.
  bool is_master() const noexcept;
  // This process's id: the master is 0, workers count up from 1, never reused.
  NodeId id() const noexcept;
  // This process's slot: 0 for the master, 1.. for workers; a replacement keeps it.
  unsigned slot() const noexcept;
  // The port the listening sockets are bound to (useful with Options::port = 0).
  std::uint16_t local_port() const noexcept;

  // The process's event loop, single-threaded; use it for your own asynchronous work.
  boost::asio::io_context& io_context() noexcept;

  // Runs the event loop until the process has stopped; returns the exit status
  // to return from main(): 0 after a graceful stop.
  int run();
  // Starts a graceful stop of this process (and, in the master, of every worker).
  void stop();
  // Called once when a graceful stop begins: cancel your own timers and close
  // your own connections here so that run() can return before Options::stop_timeout.
  void on_stop(std::function<void()> handler);

  // Master only: supervision events.
  void on_worker_started(std::function<void(const WorkerInfo&)> handler);
  void on_worker_ready(std::function<void(const WorkerInfo&)> handler);
  void on_worker_exit(std::function<void(const WorkerExit&)> handler);

  // One event per other live process, with a direct stream to it. Streams that
  // arrived before the handler was set are delivered when it is set.
  void on_node(std::function<void(Stream)> handler);
  // The streams to the other live processes, by id.
  std::vector<Stream> peers() const;
  // Sends a framed message to every other live process (frames their streams).
  void broadcast(const Message& message);
  // Sends a framed message to one process; false when no such process is live.
  bool send_to(NodeId peer, const Message& message);

  // --- cluster-wide messages across hosts (Options::bridge, docs/bridge.md) ---
  // Publishes a framed message on a named channel through Redis, to the
  // subscriptions of every process of every host bridged to the same server and
  // prefix (this process's own excepted). At most once: false when it is dropped
  // at once (no bridge, larger than bridge_max_message, bridge_max_queued full),
  // which the counters say; a message queued while Redis is away goes out when it
  // is back. Throws std::system_error for text that is not UTF-8.
  bool publish(std::string_view channel, const Message& message);
  // Runs handler for every message published on the channel by another process
  // (BridgeScope::other_hosts: by a process of another host). The message is valid
  // during the call only, as on a framed stream. Without a bridge it never runs.
  void subscribe(std::string_view channel, std::function<void(const Message&, const BridgeOrigin&)> handler,
                 BridgeScope scope = BridgeScope::every_host);
  // Called when this process's link to Redis goes up (connected and subscribed) or
  // down: e.g. to publish again the state other hosts may have missed.
  void on_bridge_state(std::function<void(BridgeLinkState)> handler);
  // This host's id (the master's, shared by its workers), as in BridgeOrigin::host.
  std::uint64_t host_id() const noexcept;
  // This process's bridge figures (state off without Options::bridge).
  BridgeCounters bridge_counters() const;

  // For your own Asio code when listen() was called without a server: this
  // process's handles on the listening sockets (empty in a master that does not serve).
  std::vector<boost::asio::ip::tcp::acceptor> take_listeners();

 private:
  friend struct detail::NodesAccess;
  explicit Nodes(std::unique_ptr<detail::Runtime> runtime);
  std::unique_ptr<detail::Runtime> runtime_;
};

// Binds (or takes the sockets systemd passed), starts the other processes, and
// returns this process's handle. Code before listen() runs in every process.
// Throws std::system_error with a message saying what failed and what to do.
Nodes listen(const Options& options, Server& server);
// Same, without a server: take the listening sockets with Nodes::take_listeners().
Nodes listen(const Options& options);

// The same two without exceptions for what listen() can refuse, every failure the
// overloads above throw as std::system_error (a port in use, a host that does not
// resolve, Options::nodes = 0, a broken worker environment): error is set to its
// code and the handle returned is empty (false); no worker is left running and
// nothing stays bound. On success error is cleared. The message saying what to do
// comes only with the throwing overloads' what(). Other exceptions (std::bad_alloc,
// what a Server::start() throws that is not a std::system_error) still propagate.
Nodes listen(const Options& options, Server& server, std::error_code& error);
Nodes listen(const Options& options, std::error_code& error);

}  // namespace multinode

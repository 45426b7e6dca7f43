// Options of multinode::listen(): the original's five, plus what a production server needs.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace multinode {

// How connections are spread over the serving processes. Either way the master
// creates and owns every listening socket for its whole life.
enum class Balancing {
  // One listening socket inherited by every process; the kernel wakes the
  // processes waiting on it. A dead worker never takes queued connections with it.
  shared,
  // One SO_REUSEPORT socket per slot, handed to whichever process fills the slot;
  // connections queued on a dead worker's socket wait for its replacement.
  reuseport,
};

// Largest payload a framed peer stream accepts by default: Options::max_frame_size
// for the mesh and FrameOptions::max_frame_size both start from it.
inline constexpr std::size_t default_max_frame_size = std::size_t{16} * 1024 * 1024;

// In which form the library writes its log lines (Options::log_format).
enum class LogFormat {
  // multinode[worker 3 slot 1 pid 4250] message
  text,
  // One JSON object per line: time, level, role, id, slot, pid, message.
  json,
};

// When a foreign worker (Options::worker_command) counts as ready (docs/cli.md, "Readiness").
enum class WorkerReadiness {
  // Once the program has been executed (execve succeeded).
  started,
  // When it sends READY=1 on NOTIFY_SOCKET, as under systemd's Type=notify.
  notify,
};

struct Options {
  // Port to listen on (the original's default). 0 picks a free port; read it back
  // with Nodes::local_port().
  std::uint16_t port = 80;
  // Number of serving processes, the master included when master_listen is true.
  unsigned nodes = 1;
  // Address or name to listen on; empty means every address (IPv6 and IPv4).
  std::string host;
  // The master serves requests too. Turn it off when workers may crash often:
  // then the master only supervises.
  bool master_listen = true;
  // Replace a worker that died.
  bool restart_children = true;

  // --- beyond the original ---
  int backlog = 4096;  // listen(2) backlog; the kernel caps it at net.core.somaxconn
  Balancing balancing = Balancing::shared;
  // A worker that dies sooner than this after starting "died young": its slot is
  // restarted after a delay doubling from restart_delay up to restart_delay_max.
  std::chrono::milliseconds min_uptime{1000};
  std::chrono::milliseconds restart_delay{100};
  std::chrono::milliseconds restart_delay_max{10000};
  // After this many young deaths in a row a slot is given up (crash loop).
  unsigned crash_loop_limit = 5;
  // Graceful stop: how long processes may finish work in hand before being killed.
  std::chrono::milliseconds stop_timeout{10000};
  // A new worker that has not reported ready in this time is killed and counts as a young death.
  std::chrono::milliseconds ready_timeout{30000};
  // Largest frame a framed peer stream accepts (frame_stream); a larger one closes that stream.
  std::size_t max_frame_size = default_max_frame_size;
  // Mesh streams poll for this long after a read before sleeping in the kernel
  // (Stream::set_busy_poll): round trips of about 7 us instead of the virtual
  // machine's wake-up (tens of us) when CPUs idle between messages, at the cost
  // of CPU time. 0 (off) by default; see docs/ipc.md.
  std::chrono::microseconds mesh_busy_poll{0};
  // Where the library's log lines go: empty for stderr, else a file every process
  // opens for appending (one write(2) per line, so lines never tear or merge).
  // SIGUSR1 to the master reopens it in every process (after logrotate renamed it).
  std::string log_file;
  LogFormat log_format = LogFormat::text;
  // Started as root, the master binds its sockets and opens log_file, then becomes
  // this user (name) for good before it starts any worker: supplementary groups
  // exactly {group}, then the gid, then the uid, checked irreversible. Empty: no
  // change. Setting it to the user the process runs as already changes nothing.
  // listen() throws std::system_error when the user does not exist or the process
  // may not change its ids. See docs/architecture.md, "Privileges".
  std::string user;
  // Group (name) to run as with user; empty means the user's primary group.
  std::string group;
  // A ready worker whose event loop has made no progress for this long is hung:
  // SIGABRT (for a core or backtrace), SIGKILL shortly after, and a replacement.
  // The loop stamps memory shared with the master; no message per beat. 0 turns it off.
  std::chrono::milliseconds heartbeat_timeout{30000};
  // Worker recycling, through the rolling path (the replacement is ready before the
  // old worker stops accepting; it finishes its requests in hand). Workers only: a
  // serving master (master_listen) is never recycled. 0 turns each off.
  // A worker is recycled once it has taken max_requests requests (the TCP server:
  // connections) plus a random 0 .. max_requests_jitter of its own, drawn at its
  // start, so that workers started together do not recycle together. The worker
  // reads its Server's counters() on a timer, not per request: it asks a little
  // after the limit (docs/architecture.md, "Supervision").
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  // A worker whose resident memory (RSS, read by the master from /proc every
  // second) is above this many MiB is recycled.
  std::uint64_t max_rss = 0;

  // --- the operator interface (README, "Control socket"; docs/operations.md) ---
  // Path of the master's control socket (a Unix stream socket, mode 0600, owned by
  // the user the master runs as): `status`, `metrics`, `reload`, `scale N`, `stop`.
  // multinode::control_command() is its client. Empty: none. A stale socket file
  // left by a dead master is replaced; one a live master answers on is refused.
  std::string control_socket;
  // "HOST:PORT" where the master serves GET /metrics (Prometheus text), e.g.
  // "127.0.0.1:9100", "[::1]:9100", ":9100" (every address). Empty: not served.
  std::string metrics_listen;
  // A control or metrics client has this long from connecting to the end of its
  // reply; a silent one is cut off then. Also bounds (half of it, at most 1 s)
  // how long status waits for the workers' figures.
  std::chrono::milliseconds control_timeout{5000};
  // Control and metrics clients at once; one more gets "too many" and is closed,
  // so a flood of them costs the serving loop a bounded number of fds and timers.
  unsigned control_max_clients = 64;

  // --- foreign workers: `multinode run -- PROGRAM` (docs/cli.md) ---
  // Not empty: every worker runs this program (argv; argv[0] looked up in PATH)
  // instead of a re-execution of this one, with systemd's protocols: sockets from
  // LISTEN_FDS, readiness and heartbeats as NOTIFY_SOCKET datagrams. Its stdout and
  // stderr are relayed, line by line, to the master's. Set master_listen to false.
  std::vector<std::string> worker_command;
  // Listening sockets of their own, instead of host and port: each "HOST:PORT" or
  // "HOST:PORT=NAME" ("[::1]:8443=https", ":8080" for every address); every process
  // gets all of them, at fds 3, 4, ... in this order, NAME (default "multinode")
  // in LISTEN_FDNAMES. Not with Balancing::reuseport.
  std::vector<std::string> listen;
  WorkerReadiness worker_readiness = WorkerReadiness::started;
  // A line of a foreign worker's output longer than this many bytes is cut in pieces.
  std::size_t worker_max_line = 16384;
  // Bytes of worker output the master holds while its own stdout or stderr is slow;
  // lines past it are dropped (and counted on stderr), never waited for.
  std::size_t worker_output_buffer = std::size_t{4} * 1024 * 1024;
  // The mesh of foreign workers (docs/protocol.md, "The mesh for workers of
  // `multinode run`"): a connection to the supervisor's supervisor.sock that sends
  // no join record within mesh_join_timeout is closed, and at most mesh_max_pending
  // connections may wait for their join at once (one more is closed at once).
  std::chrono::milliseconds mesh_join_timeout{5000};
  std::size_t mesh_max_pending = 64;
  // Warm standbys (docs/cli.md, "Standby workers"): this many processes of the
  // program kept started but not serving (MULTINODE_STANDBY=1), so that a dead
  // worker's slot is filled by promoting one instead of starting the program. Each
  // costs a process's memory. They start once the first workers are ready, and a
  // reload replaces them. The program must support it (the Node.js and Python
  // clients do). With the shared socket only, and not with {slot} in the arguments.
  // At most max_standby.
  unsigned standby = 0;
  static constexpr unsigned max_standby = 64;
  // --- cluster-wide messages across hosts (Nodes::publish, docs/bridge.md) ---
  // The Redis server that joins this host to the others: redis://HOST:PORT[/DB],
  // the password in the URL (redis://:PASSWORD@HOST:PORT) or, when it has none, in
  // the environment variable MULTINODE_BRIDGE_PASSWORD. Empty: no bridge, and
  // nothing changes. Every process keeps its own two connections (publish,
  // subscribe); Redis going away never stops the serving, the link comes back.
  std::string bridge;
  // Prepended to every channel name on Redis, so that several services share one server.
  std::string bridge_prefix = "multinode:";
  // Largest message published or accepted (envelope included); larger ones are
  // refused on publish and dropped and counted on receipt.
  std::size_t bridge_max_message = std::size_t{1} * 1024 * 1024;
  // Bytes of messages waiting for Redis (link down or slow) per process; a message
  // published beyond that is dropped and counted (pub/sub is at-most-once).
  std::size_t bridge_max_queued = std::size_t{8} * 1024 * 1024;
  // Reconnection: the delay doubles from the first to the cap while Redis stays away.
  std::chrono::milliseconds bridge_reconnect_delay{100};
  std::chrono::milliseconds bridge_reconnect_delay_max{5000};
};

}  // namespace multinode

// The runtime behind a Nodes handle (runtime.hpp).
#include "core/runtime.hpp"

#include "common/environment.hpp"
#include "common/heartbeat.hpp"
#include "common/log.hpp"
#include "common/privileges.hpp"
#include "worker/recycle.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdlib>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <random>
#include <system_error>

extern char** environ;

namespace multinode::detail {
namespace {

using clock = std::chrono::steady_clock;
// The host id of Options::bridge: set by the master, read by its workers.
constexpr const char* host_id_variable = environment::bridge_host_id;

boost::asio::ip::tcp::acceptor make_acceptor(boost::asio::io_context& io, int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const auto protocol =
      address.ss_family == AF_INET6 ? boost::asio::ip::tcp::v6() : boost::asio::ip::tcp::v4();
  return boost::asio::ip::tcp::acceptor(io, protocol, fd);
}

}  // namespace

Runtime::Runtime(const Options& options, Server* server) : options_(options), server_(server) {}

Runtime::~Runtime() {
  supervisor_.reset();  // kills and reaps workers still running (run() was never called)
  control_server_.reset();
  remove_control_socket();
  // The server's acceptors and timers belong to io_, which goes next.
  if (server_ != nullptr && serving_) server_->destroy_io_objects();
  if (accept_balance_) accept_balance_->destroy_io_objects();
  for (const int fd : own_listen_fds_) ::close(fd);
}

void Runtime::start() {
  if (options_.nodes == 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "Options::nodes is 0: at least one process must serve");
  }
  if (!options_.worker_command.empty() && options_.master_listen) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "Options::worker_command is set (foreign workers) and so is master_listen: "
                            "the master of foreign workers only supervises; set master_listen to false");
  }
  if (options_.standby > 0) {
    const auto refuse = [](const std::string& why) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument), "Options::standby: " + why);
    };
    if (options_.worker_command.empty())
      refuse(
          "standbys are for multinode run's programs (Options::worker_command); a library worker starts in "
          "milliseconds: set standby to 0");
    if (options_.balancing == Balancing::reuseport)
      refuse(
          "a standby holds the shared listening socket, and with reuseport each slot has its own: use "
          "--balancing shared, or no --standby");
    if (options_.standby > Options::max_standby)
      refuse(std::to_string(options_.standby) + " is more than " + std::to_string(Options::max_standby) +
             " standbys (each is a whole process of the program)");
    for (const auto& arg : options_.worker_command) {
      if (arg.find("{slot}") != std::string::npos)
        refuse("the program's arguments name {slot} (\"" + arg +
               "\"), which a standby does not have until it is promoted: read the slot from the promote "
               "record, or run without --standby");
    }
  }
  // Every process opens the log file itself: workers run listen() with the same
  // Options, and a worker started after a logrotate opens the current file.
  set_log_output(options_.log_file, options_.log_format == LogFormat::json);
  if (environment::names_a_worker(environ)) {
    start_worker();
  } else if (environment::names_a_run_worker(environ)) {
    start_run_worker();
  } else {
    start_master();
  }
  start_bridge();
  watch_signals();
}

// Options::bridge (docs/bridge.md): every process has its own link to Redis.
void Runtime::start_bridge() {
  if (options_.bridge.empty()) return;
  std::string error;
  auto url = parse_redis_url(options_.bridge, error);
  if (!url) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "Options::bridge '" + options_.bridge + "': " + error);
  }
  if (url->password.empty()) {
    if (const char* password = std::getenv("MULTINODE_BRIDGE_PASSWORD")) url->password = password;
  }
  // The supervisor of foreign workers (`multinode run --bridge`) runs no user code
  // that could publish: it passes the URL on to its workers (MULTINODE_BRIDGE) and
  // keeps no link of its own. The URL is checked all the same, so a typo fails here.
  if (is_master_ && !options_.worker_command.empty()) return;
  if (options_.bridge_max_message < 64) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "Options::bridge_max_message is below 64 bytes: no message would fit");
  }
  Bridge::Config config;
  config.url = std::move(*url);
  config.prefix = options_.bridge_prefix;
  config.max_message = options_.bridge_max_message;
  config.max_queued = options_.bridge_max_queued;
  config.reconnect_delay = std::max(options_.bridge_reconnect_delay, std::chrono::milliseconds{1});
  config.reconnect_delay_max = std::max(options_.bridge_reconnect_delay_max, config.reconnect_delay);
  config.host = host_id_;
  config.node = id_;
  bridge_ = std::make_unique<Bridge>(io_, std::move(config));
  bridge_->start();
}

void Runtime::start_master() {
  is_master_ = true;
  id_ = 0;
  slot_ = 0;
  set_log_identity(true, id_, slot_);
  // The host's id for cluster-wide messages (Options::bridge), inherited by every worker.
  {
    std::random_device device;
    host_id_ = (std::uint64_t{device()} << 32 | device()) | 1;  // never 0
    ::setenv(host_id_variable, std::to_string(host_id_).c_str(), 1);
  }
  // Read and removed before any worker is spawned: only the master notifies systemd.
  notifier_ = SdNotifier::from_environment();
  const auto identity =
      resolve_identity(options_.user, options_.group);  // an unknown name fails before binding

  std::vector<ListenSocket> shared;
  bool reuseport = options_.balancing == Balancing::reuseport;
  if (auto inherited = inherited_listeners()) {
    shared = std::move(*inherited);
    if (reuseport) {
      log(LogLevel::warning, "balancing = reuseport ignored: serving on the ", shared.size(),
          " socket(s) systemd passed, shared by every process");
      reuseport = false;
    }
  } else if (!reuseport) {
    shared = bind_listeners(options_, options_.port, false);
  }
  supervisor_ = std::make_unique<Supervisor>(*this, std::move(shared));
  start_operator_interface(identity);     // as root still: the socket is given to the user below
  if (options_.worker_command.empty()) {  // (foreign workers take no part in it)
    // Shared: one queue for every process, each takes no more than its share of it.
    // Reuseport: a queue per slot, but every process holds every slot's socket and
    // takes by the same rule from any of them (docs/architecture.md, "Even balancing").
    try {
      balance_table_ = BalanceTable::create();
      if (const auto entry = balance_table_.allocate(); entry && options_.master_listen)
        balance_table_.set_entry(*entry);
      supervisor_->set_balance(&balance_table_);
    } catch (const std::system_error& e) {
      log(LogLevel::warning, "connections are not balanced evenly: ", e.what());
    }
  }

  const unsigned workers = options_.master_listen ? options_.nodes - 1 : options_.nodes;
  if (identity) {
    // Options::user: everything bound (port 80) and the log file opened as root,
    // then that user for good, before any worker exists (docs/architecture.md, "Privileges").
    for (unsigned index = options_.master_listen ? 0 : 1; index <= workers; ++index)
      supervisor_->sockets_for(index);
    drop_privileges(*identity, options_.log_file);
    log(LogLevel::info, "running as user ", identity->user, " (uid ", identity->uid, "), group ",
        identity->group, " (gid ", identity->gid, ")");
  }
  if (options_.master_listen) {
    // Reuseport: every slot's sockets are bound before the master serves them all.
    for (unsigned index = 1; reuseport && index <= workers; ++index) supervisor_->sockets_for(index);
    std::vector<int> fds;
    for (const auto& socket : supervisor_->sockets_served_by(0)) fds.push_back(socket.fd);
    start_serving(fds, true);  // the master keeps its own fds for its whole life
  }
  if (balance_table_ && !accept_balance_) {
    // The master serves nothing itself, but passes the workers' doorbell on.
    accept_balance_ = std::make_unique<AcceptBalance>(io_, balance_table_, nullptr);
    boost::asio::post(io_, [this] {
      if (!stopping_ && accept_balance_) accept_balance_->start();
    });
  }
  supervisor_->start_workers(1, workers);
  port_ = supervisor_->port();
  std::string where;
  for (const auto& socket : supervisor_->sockets_for(options_.master_listen ? 0 : 1)) {
    where += (where.empty() ? "" : ", ") + socket.name;
  }
  log(LogLevel::info, "listening on ", where, " with ", options_.nodes, " process(es)",
      options_.master_listen ? " (the master serves too)" : " (the master only supervises)",
      options_.balancing == Balancing::reuseport ? ", one SO_REUSEPORT socket per slot" : "");
  serving_on_ = where;
  if (!notifier_.enabled()) return;
  if (workers == 0) {
    boost::asio::post(io_, [this] { workers_ready(); });  // the master alone serves: ready once running
  }
  if (notifier_.watchdog_interval().count() > 0) {
    watchdog_timer_ = std::make_unique<boost::asio::steady_timer>(io_);
    arm_watchdog();
  }
}

void Runtime::arm_watchdog() {
  watchdog_timer_->expires_after(notifier_.watchdog_interval());
  watchdog_timer_->async_wait([this](boost::system::error_code error) {
    if (error || stopping_) return;
    // A stuck loop sends nothing, and neither does a master whose workers are not well:
    // systemd then restarts the service (WatchdogSec=, Restart=). A worker of `multinode
    // run` beats by the same rule, to its supervisor (which replaces it when it is silent).
    if (!supervisor_ || supervisor_->healthy()) notifier_.send(watchdog_message);
    arm_watchdog();
  });
}

std::string Runtime::serving_status() const {
  const unsigned processes = supervisor_->serving_workers() + (options_.master_listen ? 1 : 0);
  return "serving on " + serving_on_ + " with " + std::to_string(processes) +
         (processes == 1 ? " process" : " processes");
}

void Runtime::workers_ready() {
  if (stopping_) return;
  notifier_.send(ready_message(::getpid(), serving_status()));
}

void Runtime::rolling_restart_began(unsigned slots) {
  notifier_.send(
      reloading_message(monotonic_usec(), "rolling restart: 0 of " + std::to_string(slots) + " replaced"));
}

void Runtime::rolling_restart_progress(unsigned replaced, unsigned slots) {
  notifier_.send(status_message("rolling restart: " + std::to_string(replaced) + " of " +
                                std::to_string(slots) + " replaced"));
}

void Runtime::rolling_restart_done() {
  if (stopping_) return;
  notifier_.send(ready_message(::getpid(), serving_status()));
}

void Runtime::start_worker() {
  is_master_ = false;
  const auto identity = environment::decode_worker(environ);
  if (!identity) {
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        "MULTINODE_WORKER_ID, MULTINODE_SLOT and MULTINODE_CONTROL_FD must all be set "
        "(they are set by the multinode master; unset MULTINODE_WORKER_ID to start a master)");
  }
  id_ = identity->id;
  slot_ = identity->slot;
  set_log_identity(false, id_, slot_);
  if (const char* host = std::getenv(host_id_variable)) host_id_ = std::strtoull(host, nullptr, 10);
  environment::unset(environment::worker_variables);
  // Started by a dropped master, a worker already runs as Options::user (a no-op then).
  if (const auto identity = resolve_identity(options_.user, options_.group)) drop_privileges(*identity);

  auto inherited = inherited_listeners();
  if (!inherited) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "started as a worker but LISTEN_FDS / LISTEN_PID do not name this process");
  }
  const int control = identity->control_fd;
  ::fcntl(control, F_SETFD, FD_CLOEXEC);
  // The same Options as the master's (same program), so the same beat interval it expects.
  const auto timeout =
      options_.heartbeat_timeout.count() > 0 ? options_.heartbeat_timeout : std::chrono::milliseconds{1000};
  worker_ =
      std::make_unique<WorkerLink>(*this, control, identity->heartbeat_fd, heartbeat_beat_interval(timeout));

  if (identity->balance_fd >= 0) {
    try {
      balance_table_ =
          BalanceTable::adopt(identity->balance_fd, identity->balance_fd + 1, identity->balance_fd + 2,
                              static_cast<unsigned>(identity->balance_entry));
    } catch (const std::system_error& e) {
      log(LogLevel::warning, "connections are not balanced evenly: ", e.what());
    }
  }

  std::vector<int> fds;
  for (const auto& socket : *inherited) fds.push_back(socket.fd);
  if (!fds.empty()) port_ = local_port(fds.front());
  start_serving(fds, false);
  worker_->start();
  watch_request_limit();
}

void Runtime::start_run_worker() {
  is_master_ = false;
  run_worker_ = true;
  if (environment::find(environ, environment::standby) != nullptr) {
    // A standby waits for its promotion (docs/cli.md); this mode serves at once.
    throw std::system_error(std::make_error_code(std::errc::not_supported),
                            "started as a standby (MULTINODE_STANDBY): a program on the C++ library does not "
                            "wait as one, and starts in milliseconds anyway; run it without --standby");
  }
  const auto identity = environment::decode_run_worker(environ);
  if (!identity) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "MULTINODE_ID and MULTINODE_SLOT must both be decimal numbers (they are set by "
                            "multinode run; unset MULTINODE_ID to start this program on its own)");
  }
  id_ = identity->id;
  slot_ = identity->slot;
  master_role_ = identity->master;
  set_log_identity(false, id_, slot_);
  set_log_relayed();
  environment::unset(environment::run_variables);
  // The supervisor's NOTIFY_SOCKET and WATCHDOG_USEC/PID for this worker (read and removed).
  notifier_ = SdNotifier::from_environment();
  log(LogLevel::debug, "started by multinode run as node ", id_, " (slot ", slot_, " of ", identity->nodes,
      "): serving the sockets it passed in this process; Options::port (", options_.port,
      ") and Options::nodes (", options_.nodes, ") are ignored, the supervisor's -p and -n decide");
  // Options::bridge and bridge_prefix from `multinode run --bridge` where the program
  // left them as they are by default, and its host id, so that every worker of one
  // supervisor is one host (docs/bridge.md).
  if (options_.bridge.empty()) options_.bridge = identity->bridge;
  if (identity->bridge_prefix && options_.bridge_prefix == Options{}.bridge_prefix)
    options_.bridge_prefix = *identity->bridge_prefix;
  host_id_ = identity->host_id;
  if (host_id_ == 0) {
    std::random_device device;
    host_id_ = (std::uint64_t{device()} << 32 | device()) | 1;  // never 0
  }
  if (options_.max_requests > 0) {
    log(LogLevel::warning, "max_requests ignored under multinode run: its supervisor recycles by --max-rss");
  }
  if (const auto identity_to_be = resolve_identity(options_.user, options_.group))
    drop_privileges(*identity_to_be);

  auto inherited = inherited_listeners();
  if (!inherited) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "started by multinode run (MULTINODE_ID is set) but LISTEN_FDS / LISTEN_PID do "
                            "not name this process: unset MULTINODE_ID to start this program on its own");
  }
  std::vector<int> fds;
  for (const auto& socket : *inherited) fds.push_back(socket.fd);
  start_serving(fds, false);
  if (!identity->mesh.empty()) {
    run_mesh_ = std::make_unique<RunMesh>(*this, identity->mesh);
    run_mesh_->start();
  }
  if (notifier_.watchdog_interval().count() > 0) {
    watchdog_timer_ = std::make_unique<boost::asio::steady_timer>(io_);
    arm_watchdog();
  }
  if (master_role_) log(LogLevel::info, "holds the master role (MULTINODE_MASTER=1)");
}

void Runtime::master_role_granted() {
  if (master_role_) return;
  master_role_ = true;
  log(LogLevel::info, "holds the master role from now on (its holder exited)");
}

void Runtime::watch_request_limit() {
  if (options_.max_requests == 0) return;
  if (server_ == nullptr) {
    log(LogLevel::warning,
        "max_requests ignored: it counts the requests of the Server given to listen(), "
        "and this program serves the listeners itself (take_listeners)");
    return;
  }
  // Each worker draws its own jitter, so that workers started together do not recycle together.
  std::mt19937_64 random(std::random_device{}());
  const std::uint64_t limit = request_limit(options_.max_requests, options_.max_requests_jitter, random());
  log(LogLevel::debug, "recycled after ", limit, " requests (max_requests ", options_.max_requests,
      ", max_requests_jitter ", options_.max_requests_jitter, ")");
  worker_->watch_requests(limit);
}

void Runtime::start_serving(const std::vector<int>& fds, bool duplicate) {
  std::vector<int> mine;
  for (const int fd : fds) {
    const int own = duplicate ? ::fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd;
    if (own < 0)
      throw std::system_error(errno, std::generic_category(), "cannot duplicate a listening socket");
    mine.push_back(own);
  }
  if (port_ == 0 && !mine.empty()) port_ = local_port(mine.front());
  serving_ = true;
  if (server_ == nullptr) {
    own_listen_fds_ = std::move(mine);  // for take_listeners()
    return;
  }
  if (balance_table_ && balance_table_.entry()) {
    accept_balance_ = std::make_unique<AcceptBalance>(
        io_, balance_table_, [this] { return server_->counters().connections_open; });
    // Counted from run() on, when this process really accepts (code between listen()
    // and run() may take its time); before the acceptors' first bursts, posted next.
    boost::asio::post(io_, [this] {
      if (!stopping_ && accept_balance_) accept_balance_->start();
    });
  }
  std::vector<boost::asio::ip::tcp::acceptor> acceptors;
  for (const int fd : mine) acceptors.push_back(make_acceptor(io_, fd));
  server_->start(io_, std::move(acceptors));
}

std::vector<boost::asio::ip::tcp::acceptor> Runtime::take_listeners() {
  std::vector<boost::asio::ip::tcp::acceptor> acceptors;
  for (const int fd : own_listen_fds_) acceptors.push_back(make_acceptor(io_, fd));
  own_listen_fds_.clear();
  return acceptors;
}

void Runtime::watch_signals() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGUSR1);
  if (is_master_) {
    signals_.add(SIGHUP);
    signals_.add(SIGTTIN);
    signals_.add(SIGTTOU);
  }
  wait_for_signal();
}

void Runtime::wait_for_signal() {
  signals_.async_wait([this](boost::system::error_code error, int signal_number) {
    if (error) return;
    switch (signal_number) {
      case SIGTERM:
      case SIGINT:
        // A signal to the whole process group (Ctrl-C, a service manager) reaches the
        // master too: let it know this stop is not a crash to repair at once.
        if (worker_) worker_->send_stopping(signal_number);
        begin_stop(std::string("SIG") + ::sigabbrev_np(signal_number), 0);
        return;  // a second TERM or INT now has its default effect: stop at once
      case SIGHUP:
        supervisor_->rolling_restart();
        break;
      case SIGTTIN:
        supervisor_->add_worker();
        break;
      case SIGTTOU:
        supervisor_->remove_worker();
        break;
      case SIGUSR1:
        if (is_master_) {
          log_reopen_.reopen_all();
        } else {
          reopen_log_file();
        }
        break;
      default:
        break;
    }
    wait_for_signal();
  });
}

void Runtime::begin_stop(const std::string& reason, int exit_status) {
  if (stopping_) return;
  stopping_ = true;
  exit_status_ = exit_status;
  stop_deadline_ = clock::now() + options_.stop_timeout;
  log(LogLevel::info, "stopping gracefully: ", reason);
  notifier_.send(stopping_message("stopping: " + reason));  // the master's only: a worker's is disabled
  if (watchdog_timer_) watchdog_timer_->cancel();
  // The master may still forward a SIGUSR1 (log reopen) while this process drains:
  // its default action, back once the set is cleared, would kill it. Blocked until
  // it is ignored, so none arrives in between (a pending one is then discarded).
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  boost::system::error_code ignored;
  signals_.clear(ignored);
  signals_.cancel(ignored);
  std::signal(SIGUSR1, SIG_IGN);
  ::pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
  for (const int fd : own_listen_fds_) ::close(fd);
  own_listen_fds_.clear();
  stop_operator_interface();
  if (accept_balance_) accept_balance_->stop();  // its load no longer holds the others back
  if (supervisor_) supervisor_->stop_all();
  if (worker_) worker_->close();
  if (run_mesh_) run_mesh_->close();  // no new peer; the streams in hand close below
  if (bridge_) bridge_->stop();
  for (auto& handler : on_stop_) handler();
  // Mesh streams watch for their peer's end, so they would keep the loop (and the
  // process) alive: they close once the work in hand is done, after what is queued is sent.
  if (server_ != nullptr && serving_) {
    server_->stop();
    server_->on_drained([this] { boost::asio::post(io_, [this] { close_peers(); }); });
  } else {
    boost::asio::post(io_, [this] { close_peers(); });
  }
  io_.stop();  // run() goes on with the drain, bounded by stop_timeout
}

int Runtime::run() {
  if (worker_) {
    boost::asio::post(io_, [this] {
      if (!stopping_) worker_->send_ready();
    });
  }
  if (run_worker_) {
    // READY=1 on NOTIFY_SOCKET (the supervisor's --ready notify), from the loop: accepting by then.
    boost::asio::post(io_, [this] {
      if (!stopping_) notifier_.send(ready_message(::getpid(), "serving as node " + std::to_string(id_)));
    });
  }
  if (!stopping_) io_.run();
  if (!stopping_) return exit_status_;  // nothing was left to do
  io_.restart();
  io_.run_until(stop_deadline_);
  if (supervisor_ && supervisor_->live_children() > 0) {
    log(LogLevel::warning, "stop_timeout (", options_.stop_timeout.count(), " ms) reached");
    supervisor_->kill_all_and_reap();
  } else if (!io_.stopped() && clock::now() >= stop_deadline_) {
    log(LogLevel::warning, "stop_timeout (", options_.stop_timeout.count(),
        " ms) reached with work in hand: exiting");
  }
  return exit_status_;
}

void Runtime::close_peers() {
  peers_closed_ = true;
  for (auto& [id, stream] : peers_) {
    if (stream.is_open()) stream.close_when_flushed();
  }
  for (auto& stream : undelivered_peers_) {
    if (stream.is_open()) stream.close_when_flushed();
  }
}

void Runtime::add_peer(int fd, NodeId peer, unsigned peer_slot) {
  // Streams of peers that are gone are dropped from the registry here, not on a hook,
  // so a user's on_close handler is never displaced.
  std::erase_if(peers_, [](const auto& entry) { return !entry.second.is_open(); });
  Stream stream = Stream::adopt(io_, fd, peer, peer_slot);
  if (peers_closed_) {
    stream.close();  // this process is past its drain: too late for a new peer
    return;
  }
  if (options_.mesh_busy_poll.count() > 0) stream.set_busy_poll(options_.mesh_busy_poll);
  peers_[peer] = stream;
  if (node_handler_) {
    node_handler_(stream);
  } else {
    undelivered_peers_.push_back(stream);
  }
}

void Runtime::set_node_handler(std::function<void(Stream)> handler) {
  node_handler_ = std::move(handler);
  if (!node_handler_) return;
  std::vector<Stream> waiting = std::move(undelivered_peers_);
  undelivered_peers_.clear();
  for (auto& stream : waiting) node_handler_(stream);
}

void Runtime::set_worker_started_handler(std::function<void(const WorkerInfo&)> handler) {
  on_worker_started_ = std::move(handler);
}
void Runtime::set_worker_ready_handler(std::function<void(const WorkerInfo&)> handler) {
  on_worker_ready_ = std::move(handler);
}
void Runtime::set_worker_exit_handler(std::function<void(const WorkerExit&)> handler) {
  on_worker_exit_ = std::move(handler);
}
void Runtime::add_stop_handler(std::function<void()> handler) {
  on_stop_.push_back(std::move(handler));
}

void Runtime::worker_started(const WorkerInfo& worker) {
  log_reopen_.worker_started(worker.pid);
  if (on_worker_started_) on_worker_started_(worker);
}
void Runtime::worker_ready(const WorkerInfo& worker) {
  // A foreign worker's SIGUSR1 is its own business (its default action kills).
  if (options_.worker_command.empty()) log_reopen_.worker_ready(worker.pid);
  if (on_worker_ready_) on_worker_ready_(worker);
}
void Runtime::worker_exited(const WorkerExit& exit) {
  log_reopen_.worker_exited(exit.worker.pid);
  if (on_worker_exit_) on_worker_exit_(exit);
}

std::vector<Stream> Runtime::peers() {
  std::vector<Stream> open;
  for (const auto& [id, stream] : peers_) {
    if (stream.is_open()) open.push_back(stream);
  }
  return open;
}

std::optional<Stream> Runtime::peer(NodeId id) {
  const auto it = peers_.find(id);
  if (it == peers_.end() || !it->second.is_open()) return std::nullopt;
  return it->second;
}

}  // namespace multinode::detail

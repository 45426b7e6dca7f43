// The master's side of the process model: spawns workers by re-executing the
// program, hands them the listening sockets and a control channel, meshes every
// pair of ready processes, replaces the dead with backoff, and stops them all.
#pragma once

#include <multinode/options.hpp>
#include <multinode/workers.hpp>

#include "common/heartbeat.hpp"
#include "common/log.hpp"
#include "common/peer_host.hpp"
#include "control/channel.hpp"
#include "net/balance.hpp"
#include "net/listeners.hpp"
#include "supervisor/mesh_broker.hpp"
#include "supervisor/output_relay.hpp"
#include "supervisor/status.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail {

class Supervisor {
 public:
  // What the supervisor needs from the process it runs in (the master's runtime,
  // in src/core/, which the supervisor may not use directly).
  // PeerHost: its id and slot are the master's, for the mesh stream to it; add_peer
  // takes the master's end of a stream to a worker.
  class Host : public virtual PeerHost {
   public:
    virtual const Options& options() const noexcept = 0;
    virtual void worker_started(const WorkerInfo& worker) = 0;
    virtual void worker_ready(const WorkerInfo& worker) = 0;
    // Once for every worker that ends, however it ended.
    virtual void worker_exited(const WorkerExit& exit) = 0;
    // Service-manager events (the runtime tells systemd, docs/systemd.md):
    // once, when every worker of the first start_workers() has reported ready;
    virtual void workers_ready() = 0;
    // a rolling restart of `slots` slots began; `replaced` of them have a ready
    // replacement now; every slot of it has been dealt with (it is over).
    virtual void rolling_restart_began(unsigned slots) = 0;
    virtual void rolling_restart_progress(unsigned replaced, unsigned slots) = 0;
    virtual void rolling_restart_done() = 0;
    // The master's own server counters, for status; nullopt when it does not serve.
    virtual std::optional<ServerCounters> master_counters() const = 0;

   protected:
    ~Host() = default;
  };

  // shared: the sockets every slot uses; empty with Balancing::reuseport, where each
  // slot gets sockets of its own, bound on demand on the same port.
  Supervisor(Host& host, std::vector<ListenSocket> shared);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Even balancing over the shared socket: every worker gets an entry in this table
  // (owned by the host, which outlives the supervisor). nullptr: not balanced.
  void set_balance(BalanceTable* table) noexcept { balance_ = table; }

  // The listening fds of a slot (binding them first in reuseport mode).
  const std::vector<ListenSocket>& sockets_for(unsigned slot);
  // What the process filling `slot` serves: with reuseport, its own slot's sockets
  // first, then those of every other slot bound so far, so that it may take
  // connections the kernel queued for another (docs/architecture.md, "Even
  // balancing"); otherwise the shared sockets. The master's call (for its own slot)
  // is remembered: a slot bound later is one the master does not serve. Past
  // max_served_sockets in all, only the slot's own. slots: set to the slots served.
  static constexpr std::size_t max_served_sockets = 256;
  std::vector<ListenSocket> sockets_served_by(unsigned slot, std::vector<unsigned>* slots = nullptr);
  std::uint16_t port();

  // Starts a worker in each of slots first_slot .. first_slot + count - 1.
  void start_workers(unsigned first_slot, unsigned count);

  // SIGHUP: replaces the workers one slot at a time; each old worker is told to
  // stop only once its replacement is ready, so no request fails. Given-up slots get another try.
  void rolling_restart(const char* cause = "SIGHUP");
  // SIGTTIN / SIGTTOU: one worker more or less. add_worker is false when it could not.
  bool add_worker(const char* cause = "SIGTTIN");
  void remove_worker();

  // Graceful stop: every worker is told to stop; nothing is restarted any more.
  void stop_all();
  // Past the stop timeout: kills what is left and reaps it.
  void kill_all_and_reap();
  std::size_t live_children() const noexcept { return children_.size(); }
  // Workers that are ready and not retiring: the ones serving now.
  unsigned serving_workers() const noexcept;
  // What the watchdog pings vouch for: no slot given up after a crash loop and
  // every worker healthy (worker_healthy()).
  bool healthy() const;

  // The control socket's `status` and `metrics`: asks every worker for its server
  // counters (a stats_request record) and calls done with the snapshot once each
  // worker that can answer has, or after `deadline` with the figures last known:
  // a hung worker cannot hold the reply up. Requests while one is out share it.
  void collect_status(std::chrono::milliseconds deadline, std::function<void(const StatusSnapshot&)> done);
  // The control socket's `scale N`: N worker slots (the master not counted), added
  // as TTIN adds them or retired from the highest slot down as TTOU retires them.
  // The reply line: "ok: ..." or "error: ...".
  std::string scale(unsigned workers);
  // Worker slots configured now (active), the master's own not counted.
  unsigned worker_slots() const;

 private:
  struct Child {
    WorkerInfo info;
    std::chrono::steady_clock::time_point started;
    bool ready = false;
    bool retiring = false;      // told to stop: not to be restarted
    NodeId replaces = 0;        // rolling restart: the worker to retire once this one is ready
    int stopped_on_signal = 0;  // the worker said it stops on a signal it got itself
    std::unique_ptr<ControlChannel> control;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
    std::unique_ptr<boost::asio::steady_timer> ready_timer;  // once ready: the SIGKILL after a hang
    HeartbeatCell heartbeat;                                 // empty when heartbeats are off
    bool hung = false;                                       // found hung: SIGABRT sent, SIGKILL follows
    // Recycling (max_requests, max_rss): why this worker is to be replaced, for the
    // log; empty when it is not. Set once: it is not asked for twice.
    std::string recycle_reason;
    bool reload_step = false;  // a replacement started by a SIGHUP rolling restart (not a recycle)
    std::optional<ServerCounters> counters;  // its last stats record, for status
    std::uint32_t stats_answered = 0;        // the serial of that record
    // Its bridge figures (bridge_stats records): those of its last stats answer, and
    // those of the answer coming in (the serial they came with), taken on its stats record.
    std::optional<BridgeCounters> bridge;
    BridgeCounters bridge_incoming;
    std::optional<std::uint32_t> bridge_incoming_serial;
    std::optional<unsigned> balance_entry;  // its entry in balance_, if any
    // A foreign worker (Options::worker_command): no control channel (control is
    // null), readiness and heartbeats from its NOTIFY_SOCKET datagrams, stopped by
    // SIGTERM to it and its process group.
    bool foreign = false;
    std::unique_ptr<boost::asio::posix::stream_descriptor> notify;  // its NOTIFY_SOCKET
    bool watchdog = false;                                          // WATCHDOG_USEC was given
    std::chrono::steady_clock::time_point last_watchdog;            // its last WATCHDOG=1 (or ready)
    std::vector<unsigned> served_slots;  // reuseport: the slots whose sockets it was given
    // A warm standby (Options::standby, foreign workers only): started without a slot
    // (info.slot 0) and not serving; `prepared` once it said it waits (READY=1, or a
    // ready record on its mesh connection); promote_standby() gives it a slot.
    bool standby = false;
    bool prepared = false;
    std::uint64_t generation = 0;  // generation_ when it was started: a reload makes it stale
  };
  struct Slot {
    NodeId current = 0;  // the worker filling the slot, 0 when none
    unsigned young_deaths = 0;
    bool given_up = false;
    bool active = true;  // false once SIGTTOU removed the slot's worker
    std::unique_ptr<boost::asio::steady_timer> restart_timer;
    std::vector<ListenSocket> own_sockets;  // reuseport mode only
    unsigned failed_recycles = 0;           // replacements of a recycle that died before ready, in a row
    unsigned restarts = 0;                  // workers restarted in it after a death (status)
  };
  // One slot of the rolling path: replaced for a SIGHUP (reload), or for a recycle
  // asked by worker recycle_of (skipped if another worker fills the slot by then).
  struct RollingStep {
    unsigned slot = 0;
    bool reload = false;
    NodeId recycle_of = 0;
  };

  void spawn(unsigned slot);
  // spawn() of a foreign worker, and what it sends on its NOTIFY_SOCKET.
  void spawn_foreign(unsigned slot, bool standby = false);
  // Options::standby: starts standbys until that many are alive (none while stopping,
  // or once they were given up after dying young in a row).
  void fill_standbys();
  // A prepared standby of this generation fills slot (its `promote` record or
  // SIGUSR2); false when there is none.
  bool promote_standby(unsigned slot);
  // A standby said it waits.
  void on_prepared(Child& child);
  // A standby that exited before it was promoted (child is out of children_ already).
  void on_standby_exit(const Child& child, int status);
  // fill_standbys() after delay (one timer: a later call moves it).
  void arm_standby_start(std::chrono::milliseconds delay);
  // "worker 3 (slot 1, pid 123)" or "standby 4 (pid 124)", for the log.
  static std::string describe(const Child& child);
  void read_notify(NodeId id);
  // What a foreign worker says through NOTIFY_SOCKET or its mesh connection (ready, watchdog).
  void on_notice(NodeId id, const NotifyMessage& notice);
  // SIGTERM or SIGKILL to a foreign worker and to its process group.
  static void signal_foreign(const Child& child, int signal_number);
  // Kills and reaps the master's children that are not workers (foreign workers only).
  void reap_orphans();
  // Milliseconds since the worker's last heartbeat (memfd stamp or WATCHDOG=1).
  std::chrono::milliseconds heartbeat_age(const Child& child) const;
  void on_record(NodeId id, const Record& record, int fd);
  void on_ready(Child& child);
  void on_exit(NodeId id, int status);
  // What follows a worker's exit once it is reported.
  enum class AfterExit { continue_rolling_restart, stop_if_nothing_serves, restart };
  // The one place every worker exit goes through: the log line, then the host's event.
  void report_exit(LogLevel level, const std::string& message, const WorkerExit& exit);
  void retire(Child& child);
  // SIGTTOU and scale: the slot is no more; its workers drain and are not replaced.
  void remove_slot(unsigned index, const char* cause);
  void mesh(Child& child);
  void continue_rolling_restart();
  // Recycling: the worker is replaced through the rolling path (why: for the log).
  void recycle(Child& child, const std::string& why);
  void queue_recycle(unsigned slot, NodeId worker);
  // The slot's step waiting in rolling_queue_ (at most one per slot), or nullptr.
  RollingStep* queued_step(unsigned slot);
  // Every memory_check_interval while workers live, with max_rss: recycles the
  // serving workers whose resident memory is above it.
  void arm_memory_check();
  void check_memory();
  // One worker's part of healthy(): not past its ready_timeout without reporting ready.
  bool worker_healthy(const Child& child, std::chrono::steady_clock::time_point now) const;
  void stop_if_nothing_serves();
  // Every heartbeat check interval while workers live: a ready worker silent for
  // heartbeat_timeout is hung and killed (then replaced as any dead worker).
  void arm_heartbeat_check();
  void check_heartbeats();
  bool heartbeat_late(const Child& child) const;
  Slot& slot(unsigned index);
  // Status: a worker's stats record; whether every worker asked has answered; the reply.
  void on_stats(Child& child, const Record& record);
  bool status_answered() const;
  void finish_status();
  StatusSnapshot snapshot() const;

  Host& host_;
  std::vector<ListenSocket> shared_;
  std::map<unsigned, Slot> slots_;
  std::map<NodeId, std::unique_ptr<Child>> children_;
  NodeId next_id_ = 1;
  std::vector<std::string> argv_;
  std::vector<std::string> base_env_;
  std::deque<RollingStep> rolling_queue_;
  bool rolling_ = false;
  // From rolling_restart() until continue_rolling_restart() has dealt with every slot.
  bool reloading_ = false;
  unsigned rolling_slots_ = 0;
  unsigned rolling_replaced_ = 0;
  // The slots of the first start_workers() not ready yet; workers_ready() once empty.
  std::vector<unsigned> starting_slots_;
  bool started_ = false;
  bool stopping_ = false;
  std::unique_ptr<boost::asio::steady_timer> heartbeat_timer_;
  bool heartbeat_armed_ = false;
  std::unique_ptr<boost::asio::steady_timer> memory_timer_;
  bool memory_armed_ = false;
  // Status: when the master started, reloads begun, the gathering under way.
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::uint64_t generation_ = 0;
  std::uint32_t stats_serial_ = 0;
  bool gathering_ = false;
  std::vector<std::function<void(const StatusSnapshot&)>> status_waiters_;
  std::unique_ptr<boost::asio::steady_timer> stats_timer_;
  BalanceTable* balance_ = nullptr;
  // Foreign workers: the program's path (PATH looked up once) and where their output goes.
  std::string program_path_;
  std::shared_ptr<OutputSink> output_;
  // Foreign workers: the broker of their mesh (MULTINODE_MESH), made by the first start_workers().
  std::unique_ptr<MeshBroker> mesh_;
  // Standbys (Options::standby): deaths before ready in a row, given up past the
  // crash-loop limit (a SIGHUP tries again), and the timer of the next start.
  unsigned standby_young_deaths_ = 0;
  bool standby_given_up_ = false;
  std::unique_ptr<boost::asio::steady_timer> standby_timer_;
  // Reuseport: the slots whose sockets the master serves itself (none when it only supervises).
  std::vector<unsigned> master_served_slots_;
  // Reuseport and balanced: whether every serving process holds the sockets of
  // `slot`, so that its own process may leave connections queued there for the others.
  bool everyone_serves(unsigned slot) const;
};

}  // namespace multinode::detail

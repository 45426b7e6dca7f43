// The master's side of the process model: spawns workers by re-executing the
// program, hands them the listening sockets and a control channel, meshes every
// pair of ready processes, replaces the dead with backoff, and stops them all.
#pragma once

#include <multinode/nodes.hpp>

#include "control/channel.hpp"
#include "net/listeners.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace multinode::detail {

class Runtime;

class Supervisor {
 public:
  // shared: the sockets every slot uses; empty with Balancing::reuseport, where each
  // slot gets sockets of its own, bound on demand on the same port.
  Supervisor(Runtime& runtime, std::vector<ListenSocket> shared);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // The listening fds of a slot (binding them first in reuseport mode).
  const std::vector<ListenSocket>& sockets_for(unsigned slot);
  std::uint16_t port();

  // Starts a worker in each of slots first_slot .. first_slot + count - 1.
  void start_workers(unsigned first_slot, unsigned count);

  // SIGHUP: replaces the workers one slot at a time; each old worker is told to
  // stop only once its replacement is ready, so no request fails. Given-up slots get another try.
  void rolling_restart();
  // SIGTTIN / SIGTTOU: one worker more or less.
  void add_worker();
  void remove_worker();

  // Graceful stop: every worker is told to stop; nothing is restarted any more.
  void stop_all();
  // Past the stop timeout: kills what is left and reaps it.
  void kill_all_and_reap();
  std::size_t live_children() const noexcept { return children_.size(); }

 private:
  struct Child {
    WorkerInfo info;
    std::chrono::steady_clock::time_point started;
    bool ready = false;
    bool retiring = false;  // told to stop: not to be restarted
    NodeId replaces = 0;    // rolling restart: the worker to retire once this one is ready
    int stopped_on_signal = 0;  // the worker said it stops on a signal it got itself
    std::unique_ptr<ControlChannel> control;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
    std::unique_ptr<boost::asio::steady_timer> ready_timer;
  };
  struct Slot {
    NodeId current = 0;  // the worker filling the slot, 0 when none
    unsigned young_deaths = 0;
    bool given_up = false;
    bool active = true;  // false once SIGTTOU removed the slot's worker
    std::unique_ptr<boost::asio::steady_timer> restart_timer;
    std::vector<ListenSocket> own_sockets;  // reuseport mode only
  };

  void spawn(unsigned slot);
  void on_record(NodeId id, const Record& record, int fd);
  void on_ready(Child& child);
  void on_exit(NodeId id, int status);
  void retire(Child& child);
  void mesh(Child& child);
  void continue_rolling_restart();
  void stop_if_nothing_serves();
  Slot& slot(unsigned index);

  Runtime& runtime_;
  std::vector<ListenSocket> shared_;
  std::map<unsigned, Slot> slots_;
  std::map<NodeId, std::unique_ptr<Child>> children_;
  NodeId next_id_ = 1;
  std::vector<std::string> argv_;
  std::vector<std::string> base_env_;
  std::deque<unsigned> rolling_queue_;
  bool rolling_ = false;
  bool stopping_ = false;
};

}  // namespace multinode::detail

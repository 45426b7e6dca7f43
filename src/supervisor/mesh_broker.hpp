// The supervisor's side of the mesh of `multinode run` workers (docs/protocol.md,
// "The mesh for workers of `multinode run`"): a private directory, the
// supervisor.sock every joining worker connects to, the `join` records checked
// against the workers the supervisor started, a `peer` record per earlier member,
// and the master role with its handover. Workers then connect to each other in that
// directory; the broker never carries their traffic. What a member says on its
// connection (`ready`, `watchdog`) goes to the supervisor as a NOTIFY_SOCKET
// datagram would, through one handler.
#pragma once

#include <multinode/node_id.hpp>

#include "control/channel.hpp"
#include "supervisor/foreign.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

namespace multinode::detail {

class MeshBroker {
 public:
  struct Limits {
    // A connection whose first record has not come within this long is closed.
    std::chrono::milliseconds join_timeout{5000};
    // Connections waiting for their first record at once; one more is closed at once.
    std::size_t max_pending = 64;
  };
  // A member's `ready` or `watchdog` record, as the NOTIFY_SOCKET datagram it stands for.
  using NoticeHandler = std::function<void(NodeId worker, const NotifyMessage& notice)>;

  // Makes the private directory (mode 0700, of the process's user: the supervisor
  // has dropped to Options::user before) in near_dir when one is given and short
  // enough, else in /tmp/multinode-UID/, and listens on supervisor.sock there.
  // std::system_error saying what failed and what to do.
  MeshBroker(boost::asio::io_context& io, const std::string& near_dir, Limits limits,
             NoticeHandler on_notice);
  // Closes every connection and removes the directory with what is left in it.
  ~MeshBroker();
  MeshBroker(const MeshBroker&) = delete;
  MeshBroker& operator=(const MeshBroker&) = delete;

  // The supervisor stops: no more joins (the listening socket and the connections
  // not joined yet close), so that nothing of the broker keeps the loop running once
  // the last worker exited. The directory stays until the destructor.
  void stop_accepting();

  // MULTINODE_MESH's value.
  const std::string& directory() const noexcept { return directory_; }

  // A worker about to be started in slot: from now on it may join. True when it is
  // to get MULTINODE_MASTER=1 (no live worker holds the role); it then holds it.
  bool expect(NodeId worker, unsigned slot);
  // A warm standby about to be started (Options::standby): from now on it may
  // connect with a `standby` record and say on it that it waits (`ready`). It is no
  // member of the mesh (nobody is told of it) until promote().
  void expect_standby(NodeId worker);
  // The standby fills slot from now on: a member that may join (on the connection it
  // has), holding the master role when no live worker does. `told`: it is connected
  // and a `promote` record is on its way to it; else the caller signals it.
  struct Promotion {
    bool told = false;
    bool master = false;
  };
  Promotion promote(NodeId worker, unsigned slot);
  // The worker exited (or was never started): its connection closes, its <id>.sock
  // goes, and when it held the master role the oldest live member gets it
  // (unless hand_over is false: the supervisor is stopping them all).
  void worker_exited(NodeId worker, bool hand_over);

  // For tests and status: the worker holding the master role, 0 when none.
  NodeId master() const noexcept { return master_; }

 private:
  struct Connection;
  struct Member {
    unsigned slot = 0;
    std::shared_ptr<Connection> connection;  // set once joined; null before, and after it closed
    bool joined = false;                     // a join was accepted (never twice)
    bool standby = false;                    // a standby not promoted yet: no member to the others
  };

  void accept_next();
  void read_next(const std::shared_ptr<Connection>& connection);
  void on_record(const std::shared_ptr<Connection>& connection);
  // A connection's first record: a join, or a standby's `standby` record.
  void on_first(const std::shared_ptr<Connection>& connection);
  void on_join(const std::shared_ptr<Connection>& connection, const Record& record);
  void on_standby(const std::shared_ptr<Connection>& connection, const Record& record);
  // The connection speaks for member id (a standby's, or a joiner's) from now on: no longer pending.
  void take(const std::shared_ptr<Connection>& connection, Member& member, NodeId id);
  // The join accepted: the newcomer is a member, told of every member before it.
  void admit(const std::shared_ptr<Connection>& connection, Member& member, NodeId id, std::uint64_t pid);
  void send(const std::shared_ptr<Connection>& connection, std::uint16_t type, NodeId id, unsigned slot,
            std::uint64_t value);
  void flush(const std::shared_ptr<Connection>& connection);
  // Closes it; `why` (when not empty) is logged as a warning with what to do.
  void refuse(const std::shared_ptr<Connection>& connection, const std::string& why);
  void close(const std::shared_ptr<Connection>& connection);

  boost::asio::io_context& io_;
  Limits limits_;
  NoticeHandler on_notice_;
  std::string directory_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  std::list<std::shared_ptr<Connection>> pending_;  // connected, no first record yet
  std::map<NodeId, Member> members_;                // every live worker started (joined or not)
  NodeId master_ = 0;
  std::size_t refused_pending_ = 0;  // over max_pending, counted for the log
};

}  // namespace multinode::detail

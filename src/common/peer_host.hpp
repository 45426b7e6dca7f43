// What each part of a process that meets the other processes (the supervisor, a
// library worker's link to its master, a `multinode run` worker's mesh) needs from
// the runtime it lives in (src/core/), which none of them may use directly: its
// loop, who it is, where a new peer stream goes, and how it stops. Each part's own
// Host interface adds what is particular to it.
#pragma once

#include <multinode/node_id.hpp>

#include <boost/asio/io_context.hpp>

#include <string>

namespace multinode::detail {

class PeerHost {
 public:
  virtual boost::asio::io_context& io() noexcept = 0;
  // This process's own id and slot (the master's: 0 and its slot).
  virtual NodeId id() const noexcept = 0;
  virtual unsigned slot() const noexcept = 0;
  // A mesh stream to process `peer` of peer_slot (fd owned by the host from now on).
  virtual void add_peer(int fd, NodeId peer, unsigned peer_slot) = 0;
  // Stops the whole process gracefully; exit_status is what its run() returns.
  virtual void begin_stop(const std::string& reason, int exit_status) = 0;
  virtual bool stopping() const noexcept = 0;

 protected:
  ~PeerHost() = default;
};

}  // namespace multinode::detail

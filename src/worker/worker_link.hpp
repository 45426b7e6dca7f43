// A worker's side of its control channel: reports ready, takes mesh streams and
// stop orders, and stops the worker when the master goes away.
#pragma once

#include <multinode/workers.hpp>

#include "control/channel.hpp"

#include <boost/asio/io_context.hpp>

#include <string>

namespace multinode::detail {

class WorkerLink {
 public:
  // What the link needs from the worker it runs in (the worker's runtime, in
  // src/core/, which the link may not use directly).
  class Host {
   public:
    virtual boost::asio::io_context& io() noexcept = 0;
    virtual NodeId id() const noexcept = 0;
    virtual unsigned slot() const noexcept = 0;
    // A mesh stream the master passed (fd owned by the host from now on).
    virtual void add_peer(int fd, NodeId peer, unsigned peer_slot) = 0;
    virtual void begin_stop(const std::string& reason, int exit_status) = 0;
    virtual bool stopping() const noexcept = 0;

   protected:
    ~Host() = default;
  };

  WorkerLink(Host& host, int control_fd);
  void start();
  void send_ready();
  // Tells the master this worker stops on a signal it got itself (not on the master's order).
  void send_stopping(int signal_number);
  void close();

 private:
  Host& host_;
  ControlChannel channel_;
};

}  // namespace multinode::detail

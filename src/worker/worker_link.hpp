// A worker's side of its control channel: reports ready, takes mesh streams and
// stop orders, and stops the worker when the master goes away.
#pragma once

#include "control/channel.hpp"

namespace multinode::detail {

class Runtime;

class WorkerLink {
 public:
  WorkerLink(Runtime& runtime, int control_fd);
  void start();
  void send_ready();
  // Tells the master this worker stops on a signal it got itself (not on the master's order).
  void send_stopping(int signal_number);
  void close();

 private:
  Runtime& runtime_;
  ControlChannel channel_;
};

}  // namespace multinode::detail

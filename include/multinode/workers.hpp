// The workers as the master sees them: what Nodes::on_worker_started, on_worker_ready
// and on_worker_exit report. Apart from nodes.hpp so that the supervisor, below
// listen() in the layering, can fill them in.
#pragma once

#include <multinode/node_id.hpp>

#include <sys/types.h>

namespace multinode {

// A worker process as the master sees it.
struct WorkerInfo {
  NodeId id = 0;      // unique for the master's life; a replacement gets a new one
  unsigned slot = 0;  // stable index a replacement inherits (the master is slot 0)
  pid_t pid = 0;
};

struct WorkerExit {
  WorkerInfo worker;
  int exit_status = -1;     // exit(2) status, or -1 when killed by a signal
  int signal = 0;           // the signal that killed it, or 0
  bool restarting = false;  // a replacement is (or will be, after backoff) started
};

}  // namespace multinode

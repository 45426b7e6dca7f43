// The worker's end of the control channel (worker_link.hpp).
#include "worker/worker_link.hpp"

#include "worker/recycle.hpp"

#include "common/log.hpp"

#include <unistd.h>
#include <algorithm>
#include <limits>

namespace multinode::detail {

WorkerLink::WorkerLink(Host& host, int control_fd, int heartbeat_fd, std::chrono::milliseconds beat_interval)
    : host_(host),
      channel_(host.io(), control_fd),
      beat_timer_(host.io()),
      beat_interval_(beat_interval),
      request_timer_(host.io()) {
  if (heartbeat_fd >= 0) heartbeat_ = HeartbeatCell::adopt(heartbeat_fd);
}

void WorkerLink::arm_beat() {
  // A timer on the loop, not a thread: a loop that is stuck (a handler that never
  // returns, a stopped process) beats no more, which is what the master looks for.
  heartbeat_.beat();
  beat_timer_.expires_after(beat_interval_);
  beat_timer_.async_wait([this](boost::system::error_code error) {
    // cancel() does not reach a wait that has already expired and is queued with
    // success: without the flag that beat would re-arm and keep a stopping loop alive.
    if (!error && !closed_) arm_beat();
  });
}

void WorkerLink::start() {
  if (heartbeat_) arm_beat();
  channel_.start(
      [this](const Record& record, int fd) {
        switch (record.type) {
          case RecordType::peer:
            if (fd >= 0) host_.add_peer(fd, record.peer_id, record.peer_slot);
            break;
          case RecordType::stop:
            host_.begin_stop("the master asked", 0);
            break;
          case RecordType::stats_request:
            send_stats(static_cast<std::uint32_t>(record.value));
            break;
          case RecordType::ready:
          case RecordType::stopping:
          case RecordType::recycle:
          case RecordType::stats:
          case RecordType::join:  // the mesh of `multinode run` workers only
          case RecordType::master:
          case RecordType::watchdog:
          case RecordType::bridge_stats:
          case RecordType::standby:
          case RecordType::promote:
            log(LogLevel::warning, "ignoring an unexpected record from the master");
            break;
        }
      },
      [this](std::error_code error) {
        if (host_.stopping()) return;
        if (!error) {
          host_.begin_stop("the master went away", 0);
        } else {
          host_.begin_stop("the control channel failed: " + error.message(), 0);
        }
      });
}

void WorkerLink::send_ready() {
  if (heartbeat_) heartbeat_.beat();
  channel_.send({RecordType::ready, host_.id(), host_.slot(), static_cast<std::uint64_t>(::getpid())});
}

void WorkerLink::send_stopping(int signal_number) {
  channel_.send({RecordType::stopping, host_.id(), host_.slot(), static_cast<std::uint64_t>(signal_number)});
}

void WorkerLink::watch_requests(std::uint64_t limit) {
  request_limit_ = limit;
  last_served_ = host_.server_counters().requests;
  last_check_ = std::chrono::steady_clock::now();
  arm_request_check(request_check_min);  // a new worker may be busy at once: learn its rate early
}

void WorkerLink::arm_request_check(std::chrono::milliseconds wait) {
  last_wait_ = wait;
  request_timer_.expires_after(wait);
  request_timer_.async_wait([this](boost::system::error_code error) {
    if (!error && !closed_) check_requests();  // the flag: as for the beat timer
  });
}

void WorkerLink::check_requests() {
  const std::uint64_t served = host_.server_counters().requests;
  if (served >= request_limit_) {
    log(LogLevel::debug, "served ", served, " requests, the limit ", request_limit_,
        " (max_requests): asking the master to recycle this worker");
    channel_.send({RecordType::recycle, host_.id(), host_.slot(), served});
    return;  // asked once; the master retries a replacement that fails by itself
  }
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_check_).count();
  const double rate = seconds > 0 ? static_cast<double>(served - last_served_) / seconds : 0;
  last_served_ = served;
  last_check_ = now;
  arm_request_check(next_request_check(request_limit_ - served, rate, last_wait_));
}

void WorkerLink::send_stats(std::uint32_t serial) {
  // Before stats, so that the master has every figure of this answer when stats comes.
  if (const auto bridge = host_.bridge_counters()) {
    for (const Record& record : bridge_stats_records(*bridge, serial)) channel_.send(record);
  }
  const ServerCounters counters = host_.server_counters();
  // The record has 32 bits for the open connections: more than 4 billion reads as that.
  const auto connections = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(counters.connections_open, std::numeric_limits<std::uint32_t>::max()));
  channel_.send({RecordType::stats, serial, connections, counters.requests});
}

void WorkerLink::close() {
  closed_ = true;
  channel_.close();
  beat_timer_.cancel();
  request_timer_.cancel();
  if (heartbeat_) heartbeat_.mark_stopping();
}

}  // namespace multinode::detail

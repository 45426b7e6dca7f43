// A worker's heartbeat (docs/protocol.md, "Heartbeat"): one monotonic stamp in
// memory shared by the master and one worker. The worker's event loop stores the
// time in it every so often; the master reads it to find workers whose loop is
// stuck. No message per beat, no system call to read it. In common because the
// supervisor (master) and the worker link (worker) may not use each other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace multinode::detail {

class HeartbeatCell {
 public:
  // The stamp a worker leaves when it stops on purpose: its loop may then end
  // without being hung.
  static constexpr std::uint64_t stopping_stamp = ~std::uint64_t{0};

  HeartbeatCell() = default;
  // The master's: a new cell (a sealed-size memfd of one page), stamped now. fd()
  // goes to the worker at spawn; close_fd() afterwards (the mapping stays).
  static HeartbeatCell create();
  // The worker's: maps the cell the master passed at fd, and closes fd.
  static HeartbeatCell adopt(int fd);
  HeartbeatCell(HeartbeatCell&& other) noexcept;
  HeartbeatCell& operator=(HeartbeatCell&& other) noexcept;
  ~HeartbeatCell();

  explicit operator bool() const noexcept { return stamp_ != nullptr; }
  int fd() const noexcept { return fd_; }
  void close_fd() noexcept;

  // CLOCK_MONOTONIC in milliseconds: the clock both processes share.
  static std::uint64_t now_ms() noexcept;
  void beat() noexcept { stamp_->store(now_ms(), std::memory_order_relaxed); }
  void mark_stopping() noexcept { stamp_->store(stopping_stamp, std::memory_order_relaxed); }
  bool stopping() const noexcept { return stamp_->load(std::memory_order_relaxed) == stopping_stamp; }
  // Time since the last beat (0 when stopping, or a stamp from the future).
  std::chrono::milliseconds age() const noexcept;

 private:
  HeartbeatCell(std::atomic<std::uint64_t>* stamp, int fd) noexcept : stamp_(stamp), fd_(fd) {}
  void release() noexcept;

  std::atomic<std::uint64_t>* stamp_ = nullptr;
  int fd_ = -1;
};

// How often a worker beats and the master looks, for a heartbeat_timeout: a
// quarter of it, capped (1 s for beats, 250 ms for checks), at least 10 ms.
std::chrono::milliseconds heartbeat_beat_interval(std::chrono::milliseconds timeout) noexcept;
std::chrono::milliseconds heartbeat_check_interval(std::chrono::milliseconds timeout) noexcept;
// SIGABRT first, SIGKILL after this: a quarter of the timeout, at most 1 s.
std::chrono::milliseconds heartbeat_kill_grace(std::chrono::milliseconds timeout) noexcept;

}  // namespace multinode::detail

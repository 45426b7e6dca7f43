// The shared heartbeat stamp (heartbeat.hpp).
#include "common/heartbeat.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <new>
#include <system_error>
#include <utility>

namespace multinode::detail {
namespace {

using namespace std::chrono_literals;

// Another process reads it: only an address-free (lock-free) atomic works across processes.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

constexpr std::size_t cell_bytes = 4096;  // one page: the smallest shared mapping

// Maps the cell of fd; on failure closes fd (both callers would) and throws.
std::atomic<std::uint64_t>* map_cell(int fd) {
  void* memory = ::mmap(nullptr, cell_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "heartbeat: mmap");
  }
  return static_cast<std::atomic<std::uint64_t>*>(memory);
}

std::chrono::milliseconds quarter(std::chrono::milliseconds timeout, std::chrono::milliseconds cap) {
  return std::clamp(timeout / 4, std::chrono::milliseconds{10}, cap);
}

}  // namespace

HeartbeatCell HeartbeatCell::create() {
  const int fd = ::memfd_create("multinode-heartbeat", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "heartbeat: memfd_create");
  // Sealed at one page: a worker cannot shrink it under the master's mapping (SIGBUS).
  if (::ftruncate(fd, cell_bytes) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "heartbeat: sizing the memfd");
  }
  std::atomic<std::uint64_t>* stamp = map_cell(fd);
  HeartbeatCell cell(new (stamp) std::atomic<std::uint64_t>(now_ms()), fd);
  return cell;
}

HeartbeatCell HeartbeatCell::adopt(int fd) {
  std::atomic<std::uint64_t>* stamp = map_cell(fd);
  ::close(fd);  // the mapping keeps the memory
  return HeartbeatCell(stamp, -1);
}

HeartbeatCell::HeartbeatCell(HeartbeatCell&& other) noexcept
    : stamp_(std::exchange(other.stamp_, nullptr)), fd_(std::exchange(other.fd_, -1)) {}

HeartbeatCell& HeartbeatCell::operator=(HeartbeatCell&& other) noexcept {
  if (this != &other) {
    release();
    stamp_ = std::exchange(other.stamp_, nullptr);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

HeartbeatCell::~HeartbeatCell() {
  release();
}

void HeartbeatCell::release() noexcept {
  if (stamp_ != nullptr) ::munmap(stamp_, cell_bytes);
  stamp_ = nullptr;
  close_fd();
}

void HeartbeatCell::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::uint64_t HeartbeatCell::now_ms() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}

std::chrono::milliseconds HeartbeatCell::age() const noexcept {
  const std::uint64_t stamp = stamp_->load(std::memory_order_relaxed);
  const std::uint64_t now = now_ms();
  if (stamp == stopping_stamp || stamp >= now) return 0ms;
  return std::chrono::milliseconds{static_cast<std::int64_t>(now - stamp)};
}

std::chrono::milliseconds heartbeat_beat_interval(std::chrono::milliseconds timeout) noexcept {
  return quarter(timeout, 1000ms);
}

std::chrono::milliseconds heartbeat_check_interval(std::chrono::milliseconds timeout) noexcept {
  return quarter(timeout, 250ms);
}

std::chrono::milliseconds heartbeat_kill_grace(std::chrono::milliseconds timeout) noexcept {
  return quarter(timeout, 1000ms);
}

}  // namespace multinode::detail

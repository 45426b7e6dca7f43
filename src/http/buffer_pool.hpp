// The buffers a process's connections borrow while they have a request in hand:
// a connection waiting for its next request holds none (docs/http.md, "Memory per
// connection"); the next one to receive bytes takes a spare instead of calling the
// allocator, so that keep-alive requests still allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace multinode::http::detail {

struct PooledBuffer {
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
};

class BufferPool {
 public:
  // Keeps at most max_spares buffers given back, each at most max_kept bytes (a
  // larger one is freed); lent, if given, mirrors how many buffers are out.
  BufferPool(std::size_t max_spares, std::size_t max_kept, std::uint64_t* lent = nullptr)
      : max_spares_(max_spares), max_kept_(max_kept), lent_(lent) {
    spares_.reserve(max_spares);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `capacity` bytes: the last spare given back if it is
  // large enough, a new one otherwise.
  PooledBuffer take(std::size_t capacity) {
    PooledBuffer buffer;
    if (!spares_.empty() && spares_.back().capacity >= capacity) {
      buffer = std::move(spares_.back());
      spares_.pop_back();
    } else {
      buffer.data = std::make_unique<char[]>(capacity);
      buffer.capacity = capacity;
    }
    ++out_;
    if (lent_) *lent_ = out_;
    return buffer;
  }

  void give(PooledBuffer buffer) noexcept {
    if (!buffer.data) return;
    --out_;
    if (lent_) *lent_ = out_;
    if (spares_.size() < max_spares_ && buffer.capacity <= max_kept_) spares_.push_back(std::move(buffer));
  }

  std::size_t lent() const noexcept { return out_; }
  std::size_t spares() const noexcept { return spares_.size(); }

 private:
  const std::size_t max_spares_;
  const std::size_t max_kept_;
  std::uint64_t* lent_;
  std::size_t out_ = 0;
  std::vector<PooledBuffer> spares_;
};

}  // namespace multinode::http::detail

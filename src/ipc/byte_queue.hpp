// A contiguous byte queue: appended at the back, consumed from the front.
// Both directions of a peer stream use one: the read side so that a frame can
// be decoded in place (its payload is contiguous), the write side so that
// everything queued goes to the kernel in one system call.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>

namespace multinode::detail {

class ByteQueue {
 public:
  explicit ByteQueue(std::size_t initial_capacity) noexcept : initial_capacity_(initial_capacity) {}

  char* data() noexcept { return storage_.get() + begin_; }
  const char* data() const noexcept { return storage_.get() + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return end_ == begin_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Free bytes behind the last byte, without moving or growing.
  std::size_t tail_room() const noexcept { return capacity_ - end_; }

  void consume(std::size_t n) noexcept {
    begin_ += n;
    // An empty queue starts again at the front, so that it rarely needs moving.
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Drops the bytes behind the first `n` (undoes an append that must not be sent).
  void truncate(std::size_t n) noexcept {
    if (n < size()) end_ = begin_ + n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Room for at least `n` more bytes behind the last one; write there, then commit().
  char* prepare(std::size_t n) {
    if (capacity_ - end_ < n) make_room(n);
    return storage_.get() + end_;
  }
  void commit(std::size_t n) noexcept { end_ += n; }

  void append(const void* bytes, std::size_t n) {
    if (n == 0) return;
    std::memcpy(prepare(n), bytes, n);
    end_ += n;
  }

  // Gives memory back after a burst of large messages: when empty and larger than
  // `keep`, the storage goes (it is allocated again on the next use).
  void free_memory_if_larger(std::size_t keep) noexcept {
    if (empty() && capacity_ > keep) {
      storage_.reset();
      capacity_ = 0;
    }
  }

 private:
  void make_room(std::size_t n) {
    std::size_t used = size();
    // Moving the bytes to the front is worth it only when it frees at least as
    // much as it copies: then every byte is moved at most about once.
    if (begin_ > 0 && begin_ >= used && capacity_ - used >= n) {
      std::memmove(storage_.get(), storage_.get() + begin_, used);
      begin_ = 0;
      end_ = used;
      return;
    }
    std::size_t new_capacity = capacity_ ? capacity_ * 2 : initial_capacity_;
    if (new_capacity < used + n) new_capacity = used + n;
    // new char[] without () leaves the bytes uninitialised: pages are touched only when used.
    std::unique_ptr<char[]> grown(new char[new_capacity]);
    if (used) std::memcpy(grown.get(), storage_.get() + begin_, used);
    storage_ = std::move(grown);
    capacity_ = new_capacity;
    begin_ = 0;
    end_ = used;
  }

  std::unique_ptr<char[]> storage_;
  std::size_t initial_capacity_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace multinode::detail

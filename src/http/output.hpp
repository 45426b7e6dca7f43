// A connection's pending output: response bytes in the order they must go out,
// sent with one writev per attempt. Small pieces are copied into one growing
// string (the common case: heads and small bodies, one contiguous buffer); large
// bodies handed over with Response::end(std::string&&) are kept as they are. A
// WebSocket connection queues its frames in the same class: frames it encodes
// itself are copied, a broadcast Frame is referenced (append_shared), never copied.
#pragma once

#include "http/buffer_pool.hpp"

#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::http::detail {

// A growable byte buffer whose append is small enough to inline: response heads
// are a dozen short pieces, and std::string::append is an out-of-line call each.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { free_memory(); }
  // Where the memory comes from and goes back to (nullptr: the allocator).
  void set_pool(BufferPool* pool) noexcept { pool_ = pool; }

  void append(std::string_view bytes) {
    if (bytes.size() > capacity_ - size_) grow(bytes.size());
    if (!bytes.empty()) std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  void push_back(char c) {
    if (size_ == capacity_) grow(1);
    data_[size_++] = c;
  }
  const char* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  void clear() noexcept { size_ = 0; }
  // Gives the memory back (the buffer is empty afterwards).
  void free_memory() noexcept {
    if (pool_ && data_) pool_->give({std::move(data_), capacity_});
    data_.reset();
    size_ = capacity_ = 0;
  }

 private:
  void grow(std::size_t more) {
    const std::size_t wanted = std::max(size_ + more, std::max<std::size_t>(capacity_ * 2, 1024));
    if (!data_ && pool_) {
      PooledBuffer buffer = pool_->take(wanted);
      data_ = std::move(buffer.data);
      capacity_ = buffer.capacity;
      return;
    }
    auto bigger = std::make_unique<char[]>(wanted);
    if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    capacity_ = wanted;
  }

  BufferPool* pool_ = nullptr;
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

class OutputQueue {
 public:
  // Bodies at least this large are moved in rather than copied.
  static constexpr std::size_t owned_threshold = std::size_t{16} * 1024;

  void append(std::string_view bytes) { bytes_.append(bytes); }
  void append(char c) { bytes_.push_back(c); }
  void append_owned(std::string&& bytes) {
    if (bytes.size() < owned_threshold) {
      bytes_.append(std::string_view(bytes));
      return;
    }
    append_shared(std::make_shared<const std::string>(std::move(bytes)));
  }
  // Bytes that other queues may hold too (a WebSocket broadcast frame encoded once):
  // referenced, never copied.
  void append_shared(std::shared_ptr<const std::string> bytes) {
    pieces_size_ += bytes->size();
    pieces_.push_back({bytes_.size(), std::move(bytes)});
  }

  bool empty() const noexcept { return size() == 0; }
  // Bytes still to be written.
  std::size_t size() const noexcept { return bytes_.size() + pieces_size_ - written_; }

  // The bytes still to be written, as at most max_buffers buffers.
  void buffers(std::vector<boost::asio::const_buffer>& out, std::size_t max_buffers = 64) const {
    out.clear();
    std::size_t skip = written_;
    std::size_t from = 0;  // next byte of bytes_ to send
    auto add = [&](const char* data, std::size_t size) {
      if (size == 0) return;
      if (skip >= size) {
        skip -= size;
        return;
      }
      if (out.size() < max_buffers) out.emplace_back(data + skip, size - skip);
      skip = 0;
    };
    for (const Piece& piece : pieces_) {
      add(bytes_.data() + from, piece.bytes_end - from);
      from = piece.bytes_end;
      add(piece.bytes->data(), piece.bytes->size());
    }
    add(bytes_.data() + from, bytes_.size() - from);
  }

  void consume(std::size_t size) noexcept {
    written_ += size;
    if (size_total() == written_) clear();
  }

  void clear() noexcept {
    bytes_.clear();
    pieces_.clear();
    pieces_size_ = 0;
    written_ = 0;
  }

  void set_pool(BufferPool* pool) noexcept { bytes_.set_pool(pool); }
  // Gives back memory a large response left behind, once everything is sent.
  void free_memory(std::size_t keep) {
    if (empty() && bytes_.capacity() > keep) bytes_.free_memory();
  }
  // Gives the byte buffer back (to the pool) once everything is sent, and the list
  // of pieces with it: an idle connection holds neither.
  void release() noexcept {
    if (!empty()) return;
    bytes_.free_memory();
    std::vector<Piece>().swap(pieces_);
  }
  bool holds_buffer() const noexcept { return bytes_.capacity() > 0; }
  std::size_t held_bytes() const noexcept { return bytes_.capacity() + pieces_.capacity() * sizeof(Piece); }

 private:
  std::size_t size_total() const noexcept { return bytes_.size() + pieces_size_; }

  // pieces_[i].bytes go out after bytes_[.., bytes_end).
  struct Piece {
    std::size_t bytes_end;
    std::shared_ptr<const std::string> bytes;
  };
  ByteBuffer bytes_;
  std::vector<Piece> pieces_;
  std::size_t pieces_size_ = 0;
  std::size_t written_ = 0;
};

}  // namespace multinode::http::detail

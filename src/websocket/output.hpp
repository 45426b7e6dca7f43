// A WebSocket connection's pending output: frames in the order they go out,
// written with one writev per attempt. Frames the connection encodes itself
// (echoes, control frames) are copied into one growing buffer; a broadcast Frame is
// referenced, not copied: every connection it goes to holds the same bytes.
#pragma once

#include "http/output.hpp"

#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::websocket::detail {

class FrameQueue {
 public:
  // Room for n bytes at the end of the copied buffer, filled by the caller.
  void append(std::string_view bytes) { bytes_.append(bytes); }
  void append_shared(const std::shared_ptr<const std::string>& frame) {
    shared_size_ += frame->size();
    pieces_.push_back({bytes_.size(), frame});
  }

  bool empty() const noexcept { return size() == 0; }
  std::size_t size() const noexcept { return bytes_.size() + shared_size_ - written_; }

  // The bytes still to be written, as at most max_buffers buffers.
  void buffers(std::vector<boost::asio::const_buffer>& out, std::size_t max_buffers = 64) const {
    out.clear();
    std::size_t skip = written_;
    std::size_t from = 0;
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
      add(piece.frame->data(), piece.frame->size());
    }
    add(bytes_.data() + from, bytes_.size() - from);
  }

  void consume(std::size_t size) noexcept {
    written_ += size;
    if (written_ == bytes_.size() + shared_size_) clear();
  }

  void clear() noexcept {
    bytes_.clear();
    pieces_.clear();
    shared_size_ = 0;
    written_ = 0;
  }

  // Gives the memory back once everything is sent (an idle connection holds none).
  void free_memory() noexcept {
    if (!empty()) return;
    bytes_.free_memory();
    std::vector<Piece>().swap(pieces_);
  }
  std::size_t held_bytes() const noexcept { return bytes_.capacity() + pieces_.capacity() * sizeof(Piece); }

 private:
  // pieces_[i].frame goes out after bytes_[.., bytes_end).
  struct Piece {
    std::size_t bytes_end;
    std::shared_ptr<const std::string> frame;
  };
  http::detail::ByteBuffer bytes_;
  std::vector<Piece> pieces_;
  std::size_t shared_size_ = 0;
  std::size_t written_ = 0;
};

}  // namespace multinode::websocket::detail

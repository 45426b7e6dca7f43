#include "ipc/frame_codec.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace multinode::detail {

std::uint16_t close_code_for(std::error_code error) noexcept {
  if (error.category() != category()) return 255;
  switch (static_cast<errc>(error.value())) {
    case errc::frame_too_large:
      return 1;
    case errc::bad_frame_type:
      return 2;
    case errc::bad_frame_header:
      return 3;
    case errc::invalid_utf8:
      return 4;
    case errc::invalid_json:
      return 5;
    case errc::bad_control_frame:
      return 6;
    default:
      return 255;
  }
}

void append_close_frame(ByteQueue& out, std::uint16_t code, std::string_view reason) {
  if (reason.size() > max_close_reason) reason = reason.substr(0, max_close_reason);
  // Cutting a UTF-8 reason short must not leave half a character.
  while (!reason.empty() && !is_valid_utf8(reason)) reason.remove_suffix(1);
  std::size_t length = 3 + reason.size();
  char* p = out.prepare(frame_header_size + length);
  write_frame_header(p, FrameType::control, static_cast<std::uint32_t>(length));
  p[frame_header_size] = static_cast<char>(control_close);
  p[frame_header_size + 1] = static_cast<char>(code & 0xFF);
  p[frame_header_size + 2] = static_cast<char>(code >> 8);
  std::copy(reason.begin(), reason.end(), p + frame_header_size + 3);
  out.commit(frame_header_size + length);
}

namespace {
// The first block: enough for typical small objects without touching malloc again.
constexpr std::size_t arena_initial_block = std::size_t{8} * 1024;
// The kept block grows to what a message needed, up to this; larger values use extra blocks every time.
constexpr std::size_t arena_max_kept_block = std::size_t{1024} * 1024;
}  // namespace

JsonArena::~JsonArena() {
  while (extra_) {
    Block* next = extra_->next;
    std::free(extra_);
    extra_ = next;
  }
  std::free(first_);
}

void* JsonArena::do_allocate(std::size_t size, std::size_t alignment) {
  ++allocations_;
  auto address = reinterpret_cast<std::uintptr_t>(cursor_);
  std::uintptr_t aligned = (address + alignment - 1) & ~(std::uintptr_t(alignment) - 1);
  if (cursor_ && aligned + size <= reinterpret_cast<std::uintptr_t>(limit_)) {
    cursor_ = reinterpret_cast<char*>(aligned + size);
    used_ += size;
    return reinterpret_cast<void*>(aligned);
  }
  return allocate_slow(size, alignment);
}

void* JsonArena::allocate_slow(std::size_t size, std::size_t alignment) {
  if (!first_) {
    first_size_ = std::max(arena_initial_block, size + alignment);
    first_ = static_cast<char*>(std::malloc(first_size_));
    if (!first_) throw std::bad_alloc();
    cursor_ = first_;
    limit_ = first_ + first_size_;
  } else {
    std::size_t block_size = std::max(first_size_, size + alignment);
    auto block = static_cast<Block*>(std::malloc(sizeof(Block) + block_size));
    if (!block) throw std::bad_alloc();
    block->next = extra_;
    extra_ = block;
    cursor_ = reinterpret_cast<char*>(block + 1);
    limit_ = cursor_ + block_size;
  }
  --allocations_;  // counted again by do_allocate
  return do_allocate(size, alignment);
}

void JsonArena::reset() noexcept {
  if (extra_) {
    while (extra_) {
      Block* next = extra_->next;
      std::free(extra_);
      extra_ = next;
    }
    // The last message did not fit: keep a block that would have held it.
    std::size_t wanted = std::min(arena_max_kept_block, used_ + used_ / 4 + 64);
    if (wanted > first_size_) {
      if (char* grown = static_cast<char*>(std::malloc(wanted))) {
        std::free(first_);
        first_ = grown;
        first_size_ = wanted;
      }
    }
  }
  cursor_ = first_;
  limit_ = first_ + first_size_;
  used_ = 0;
}

namespace {
boost::json::parse_options parse_options_for(const FrameOptions& options) {
  boost::json::parse_options parse;
  parse.max_depth = options.max_json_depth;
  parse.allow_comments = false;
  parse.allow_trailing_commas = false;
  parse.allow_invalid_utf8 = false;
  return parse;
}
}  // namespace

FrameDecoder::FrameDecoder(const FrameOptions& options)
    : options_(options),
      arena_(boost::json::make_shared_resource<JsonArena>(arena_raw_)),
      parser_(boost::json::storage_ptr(), parse_options_for(options)) {}

std::error_code FrameDecoder::parse_json(const char* data, std::size_t size) {
  parser_.reset(arena_);
  std::error_code error;
  parser_.write(data, size, error);
  if (error) {
    // No value escaped: the partial one is dropped with the reset, its memory is the arena's.
    parser_.reset();
    arena_raw_->reset();
    return errc::invalid_json;
  }
  allocations_after_parse_ = arena_raw_->allocations();
  return {};
}

void FrameDecoder::recycle_arena() {
  // The parser holds the arena until its next reset; let it go first.
  parser_.reset();
  if (arena_raw_->allocations() != allocations_after_parse_) {
    // The handler copied something out of the message into the arena: that copy
    // owns the arena now (it is reference-counted); take a fresh one.
    arena_ = boost::json::make_shared_resource<JsonArena>(arena_raw_);
  } else {
    arena_raw_->reset();
  }
}

}  // namespace multinode::detail

// The request parser and the per-connection input buffer it parses in place.
//
// RequestParser owns the request grammar and the strict framing policy of
// docs/http.md, each rule written once: one line scanner for the head and the
// trailer section (line endings and limits as bytes arrive, each field line
// validated once and recorded as views into the caller's buffer, no copy, no
// allocation per request), and one chunk lexer (chunk-size line, extensions,
// the CRLF after data, last chunk). Its refusals are multinode::http::error values.
// RequestReader owns one connection's buffer: it hands out room to read into,
// compacts and grows the buffer, drives the parser and says what happened.
#pragma once

#include <multinode/http.hpp>

#include "http/buffer_pool.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace multinode::http::detail {

// What one step of the parser came to.
enum class Parse { need_more, done, failed };

class RequestParser {
 public:
  // chunk_line_limit: the longest chunk-size line, extensions included.
  RequestParser(const Options& options, Request& request, std::size_t chunk_line_limit) noexcept
      : options_(options), request_(request), chunk_line_limit_(chunk_line_limit) {}

  // The head, given all of the request's bytes so far from its first one (they may
  // have moved since the last call, the views in Request moved with them): done
  // once the empty line after the fields is in, with the request line and fields
  // recorded in Request.
  Parse scan_head(const char* head, std::size_t size) noexcept;
  // Why a head that filled the largest buffer is refused.
  error head_overflow(const char* head, std::size_t size) const noexcept;
  std::size_t head_size() const noexcept { return lines_.scanned; }
  bool has_body() const noexcept { return body_state_ != BodyState::done; }

  // The body, from the first byte not consumed before (mutable: chunked bodies are
  // joined in place, over their own framing). used: the bytes consumed.
  Parse parse_body(char* data, std::size_t size, std::size_t& used);

  error failure() const noexcept { return failure_; }
  // An on_data callback threw: not the client's fault, answered 500.
  bool callback_failed() const noexcept { return callback_failed_; }

 private:
  // Where one block of lines (the head, or the trailer section) stands; offsets
  // are from the block's first byte, so that the block may move between calls.
  struct Lines {
    std::size_t scanned = 0;     // bytes checked so far
    std::size_t line_start = 0;  // where the current line starts
    std::size_t count = 0;       // complete lines
    // The last field line, processed once the first byte of the next line shows
    // whether that one folds into it.
    std::size_t pending_start = 0;
    std::size_t pending_end = 0;
    bool pending = false;
    // The first refusal a field earned: reported once the block is complete, as
    // line endings and limits (checked as the bytes arrive) come first.
    std::optional<error> deferred;
  };
  enum class BodyState { length, chunk_line, chunk_data, chunk_crlf, trailers, done };

  Parse scan_lines(const char* data, std::size_t available, std::size_t limit) noexcept;
  Parse on_line(const char* data, std::size_t start, std::size_t end) noexcept;
  std::optional<error> check_request_line(std::string_view line) noexcept;
  error request_line_failure(const char* head, std::size_t size) const noexcept;
  void process_field(const char* data, bool folded) noexcept;
  std::optional<error> check_field(std::string_view line, bool folded) noexcept;
  std::optional<error> check_header_field(std::string_view line, std::string_view name,
                                          std::string_view value) noexcept;
  std::optional<error> check_trailer_field(std::string_view name, std::string_view value) noexcept;
  bool add_connection_options(std::string_view value) noexcept;
  void add_transfer_codings(std::string_view value) noexcept;
  std::optional<error> finish_head() noexcept;
  Parse lex_chunk_line(const char* line, std::size_t available, std::size_t& line_size) noexcept;
  error chunk_line_overflow(std::string_view line) const noexcept;
  bool keep_alive() const noexcept;
  bool deliver(char* data, std::size_t size);
  Parse fail(error reason) noexcept {
    failure_ = reason;
    return Parse::failed;
  }

  const Options& options_;
  Request& request_;
  const std::size_t chunk_line_limit_;

  Lines lines_;
  bool in_trailers_ = false;
  error failure_ = error::bad_request_line;
  bool callback_failed_ = false;

  // What the fields said, in the order they came.
  unsigned host_count_ = 0;
  unsigned content_length_count_ = 0;
  std::uint64_t content_length_ = 0;
  bool transfer_encoding_seen_ = false;
  unsigned chunked_codings_ = 0;
  unsigned other_codings_ = 0;
  bool last_coding_chunked_ = false;
  bool transfer_encoding_syntax_ok_ = true;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  std::string_view expect_;
  std::size_t trailer_count_ = 0;

  BodyState body_state_ = BodyState::done;
  std::uint64_t remaining_ = 0;    // of the Content-Length body, or of the current chunk
  std::uint64_t body_budget_ = 0;  // what max_body_bytes leaves for the chunks to come
};

// What RequestReader::next() found.
enum class ReadEvent {
  need_more,  // read more bytes (prepare, read, commit) and call next() again
  head,       // the head of the current request is complete (once per request)
  complete,   // the current request is complete, body included (once per request)
  failed,     // the request is refused: failure() says why; the connection must close
};

// Where the current request stands, for the timeouts.
enum class ReadPhase {
  idle,      // no byte of a next request yet
  head,      // some of a head
  body,      // the head, not the whole body
  complete,  // a whole request waiting for finish_request()
};

class RequestReader {
 public:
  // The buffer's first size (Options::read_buffer_size, at least 4 KiB).
  static std::size_t initial_capacity(const Options& options) noexcept;
  // pool: where the buffer comes from and goes back to (nullptr: the allocator).
  explicit RequestReader(const Options& options, BufferPool* pool = nullptr);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  // Room to read into, after compacting and growing the buffer as needed; empty
  // when the current request cannot fit within the limits (next() then fails).
  std::span<char> prepare();
  void commit(std::size_t size) noexcept { end_ += size; }
  // Parses what is buffered: call until it returns need_more (or failed).
  ReadEvent next();
  // The current request: valid from the head event until finish_request().
  Request& request() noexcept { return request_; }
  // Why next() failed. callback_failed: an on_data callback threw.
  error failure() const noexcept { return failure_; }
  bool callback_failed() const noexcept { return callback_failed_; }
  ReadPhase phase() const noexcept { return phase_; }
  // The current request was answered: forget it and move on to the next one.
  void finish_request() noexcept;
  // Bytes read but not parsed yet (the start of a next, pipelined request).
  std::size_t unparsed() const noexcept { return end_ - parse_pos_; }
  // Those bytes (for a connection taken over after an upgrade: the new protocol's first bytes).
  std::string_view unparsed_bytes() const noexcept { return {data_.get() + parse_pos_, end_ - parse_pos_}; }
  // No request in hand and nothing buffered: the next byte starts a new request.
  bool between_requests() const noexcept { return phase_ == ReadPhase::idle && end_ == parse_pos_; }
  // Gives the buffer back (to the pool) when between_requests(); prepare() takes one again.
  void free_memory() noexcept;
  bool holds_buffer() const noexcept { return data_ != nullptr; }

 private:
  ReadEvent fail(error reason) noexcept;
  void compact() noexcept;
  void move_views(std::size_t split, std::ptrdiff_t before, std::ptrdiff_t after) noexcept;
  bool grow(std::size_t wanted);
  void release() noexcept;
  void reserve_for_body();
  std::size_t keep_end() const noexcept;

  const Options& options_;
  // The longest chunk-size line: extensions, size digits and some slack.
  const std::size_t chunk_line_limit_;
  std::size_t initial_capacity_;
  std::size_t max_capacity_;
  BufferPool* pool_;
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t request_start_ = 0;  // where the current request's bytes start
  std::size_t parse_pos_ = 0;      // first byte not consumed by the parser (a head is consumed whole)
  std::size_t end_ = 0;            // end of the bytes read
  std::size_t head_end_ = 0;       // end of the current head, once complete

  Request request_;
  std::optional<RequestParser> parser_;
  ReadPhase phase_ = ReadPhase::idle;
  bool head_reported_ = false;
  // Stream mode, once the handler has the head: the head's bytes never move again.
  bool head_pinned_ = false;
  bool failed_ = false;
  bool callback_failed_ = false;
  error failure_ = error::bad_request_line;
};

}  // namespace multinode::http::detail

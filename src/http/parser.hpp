// The request parser and the per-connection input buffer it parses in place.
//
// RequestParser is a Beast basic_parser<true> that records string views into the
// caller's buffer (no copy, no allocation per request) and adds the strict framing
// policy of docs/http.md on top of what Boost 1.81's Beast checks by itself.
// RequestReader owns one connection's buffer: it hands out room to read into,
// compacts and grows the buffer, drives the parser and says what happened.
#pragma once

#include <multinode/http.hpp>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/basic_parser.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace multinode::http::detail {

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser(const Options& options, Request& request, bool stream_body);

  // Parses bytes that follow what was consumed before. The bytes are mutable
  // because chunked bodies are joined in place, over their own framing.
  std::size_t parse(char* data, std::size_t size, boost::beast::error_code& ec);

  // Our policy's reason for the last error, when it was ours rather than Beast's.
  std::optional<error> policy_error() const noexcept { return policy_error_; }
  bool request_line_done() const noexcept { return request_line_done_; }
  bool in_trailers() const noexcept { return in_trailers_; }
  bool content_length_seen() const noexcept { return content_length_count_ > 0; }
  bool transfer_encoding_seen() const noexcept { return transfer_encoding_seen_; }
  // An on_data callback threw: not the client's fault, answered 500.
  bool callback_failed() const noexcept { return callback_failed_; }
  // Bytes of the current chunk's data still to come: the unparsed input starts
  // inside a chunk, not at a chunk line.
  std::uint64_t chunk_data_remaining() const noexcept { return chunk_remaining_; }
  // A chunk's data has been read whole: its CRLF comes before the next chunk line.
  bool expects_chunk_crlf() const noexcept { return expect_chunk_crlf_; }

 private:
  void on_request_impl(boost::beast::http::verb method, boost::beast::string_view method_string, boost::beast::string_view target,
                       int version, boost::beast::error_code& ec) override;
  void on_response_impl(int status, boost::beast::string_view reason, int version, boost::beast::error_code& ec) override;
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string, boost::beast::string_view value,
                     boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length, boost::beast::error_code& ec) override;
  std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions, boost::beast::error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, boost::beast::string_view body, boost::beast::error_code& ec) override;
  void on_finish_impl(boost::beast::error_code& ec) override;

  void fail(boost::beast::error_code& ec, error reason) noexcept;
  // Mutable pointer for a view Beast handed us from the current input.
  char* mutable_at(const char* p) const noexcept { return input_ + (p - input_); }
  void add_transfer_codings(std::string_view value) noexcept;
  bool has_tab_around(const char* name_end, std::string_view value) const noexcept;
  std::size_t deliver(std::string_view body, boost::beast::error_code& ec);

  const Options& options_;
  Request& request_;
  bool stream_body_;
  // The input of the current parse() call; Beast's views point into it.
  char* input_ = nullptr;
  const char* input_end_ = nullptr;
  // Start of the trailer section, valid during the parse() call that parses it
  // (Beast parses the last chunk and every trailer in one go).
  const char* trailer_start_ = nullptr;

  std::optional<error> policy_error_;
  bool request_line_done_ = false;
  bool in_trailers_ = false;
  bool callback_failed_ = false;
  unsigned host_count_ = 0;
  unsigned content_length_count_ = 0;
  bool transfer_encoding_seen_ = false;
  // Transfer codings of every Transfer-Encoding field, in order.
  unsigned chunked_codings_ = 0;
  unsigned other_codings_ = 0;
  bool last_coding_chunked_ = false;
  bool transfer_encoding_syntax_ok_ = true;
  std::string_view expect_;
  std::size_t trailer_count_ = 0;
  std::uint64_t chunk_remaining_ = 0;
  bool expect_chunk_crlf_ = false;
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
  explicit RequestReader(const Options& options);

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
  std::size_t capacity() const noexcept { return capacity_; }
  // Gives a grown buffer back when nothing is buffered.
  void release_memory() noexcept;
  void free_memory() noexcept { release_memory(); }  // the name the parser's rewrite gives it

 private:
  enum class HeadScan { need_more, complete, failed };
  HeadScan scan_head() noexcept;
  std::optional<error> check_request_line(std::string_view line) const noexcept;
  ReadEvent fail(error reason) noexcept;
  ReadEvent fail_need_more();
  std::optional<error> chunk_framing_problem() const noexcept;
  bool awaiting_trailer_section() const noexcept;
  std::optional<std::string_view> pending_chunk_line() const noexcept;
  error map_beast_error(const boost::beast::error_code& ec) const noexcept;
  error request_line_failure() const noexcept;
  void compact() noexcept;
  bool grow(std::size_t wanted);
  void reserve_for_body();
  std::size_t keep_end() const noexcept;

  const Options& options_;
  std::size_t initial_capacity_;
  std::size_t max_capacity_;
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t request_start_ = 0;  // where the current request's bytes start
  std::size_t parse_pos_ = 0;      // first byte not consumed by the parser
  std::size_t end_ = 0;            // end of the bytes read
  std::size_t head_end_ = 0;       // end of the current head, once complete

  Request request_;
  std::optional<RequestParser> parser_;
  ReadPhase phase_ = ReadPhase::idle;
  std::size_t head_scanned_ = 0;  // bytes of the current head checked so far
  bool request_line_seen_ = false;
  bool head_reported_ = false;
  bool complete_reported_ = false;
  // Stream mode, once the handler has the head: the head's bytes never move again.
  bool head_pinned_ = false;
  bool failed_ = false;
  bool callback_failed_ = false;
  error failure_ = error::bad_request_line;
};

}  // namespace multinode::http::detail

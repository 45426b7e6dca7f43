// An HTTP request as the handler sees it: views into the connection's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace multinode::http {

namespace detail {
class Connection;
class RequestParser;
class RequestReader;
}  // namespace detail

// One header or trailer field, as received (name case preserved, value without
// surrounding whitespace). The views point into the connection's buffer.
struct Field {
  std::string_view name;
  std::string_view value;
};

// A request. It and every view it returns stay valid until its response ends.
class Request {
 public:
  std::string_view method() const noexcept { return method_; }  // as sent, case preserved
  std::string_view target() const noexcept { return target_; }  // as sent, not decoded
  std::string_view path() const noexcept;                       // target up to '?'
  std::string_view query() const noexcept;                      // after '?', empty if none
  int version() const noexcept { return version_; }             // 10 or 11
  bool is_head() const noexcept { return method_ == "HEAD"; }

  std::span<const Field> headers() const noexcept { return {fields_.data(), header_count_}; }
  // First field with this name, compared case-insensitively; nullptr when absent.
  const Field* find(std::string_view name) const noexcept;
  // Value of the first field with this name, empty when absent.
  std::string_view header(std::string_view name) const noexcept;
  // Trailer fields of a chunked body (complete once the body is).
  std::span<const Field> trailers() const noexcept;

  // The whole body, chunked framing removed (empty in stream_body mode).
  std::string_view body() const noexcept { return {body_begin_, body_size_}; }
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  bool chunked() const noexcept { return chunked_; }
  // The client asked to keep the connection open (HTTP/1.1 without `Connection: close`,
  // HTTP/1.0 with `Connection: keep-alive`).
  bool keep_alive() const noexcept { return keep_alive_; }
  // An HTTP/1.1 request with `Expect: 100-continue` (the server sends 100 Continue
  // by itself when the body has not arrived yet).
  bool expects_continue() const noexcept { return expects_continue_; }

  // Options::stream_body only; set them in the handler. on_data gets each piece of
  // the body as it is read; on_end runs once the body (and its trailers) are complete.
  void on_data(std::function<void(std::string_view)> handler) { on_data_ = std::move(handler); }
  void on_end(std::function<void()> handler) { on_end_ = std::move(handler); }

 private:
  friend class detail::RequestParser;
  friend class detail::RequestReader;
  friend class detail::Connection;

  void reset() noexcept;
  // Points every view into new_base after the bytes under them were copied there whole.
  void rebase(const char* old_base, char* new_base) noexcept;

  std::string_view method_;
  std::string_view target_;
  int version_ = 11;
  std::vector<Field> fields_;  // headers, then trailers; capacity kept across requests
  std::size_t header_count_ = 0;
  const char* body_begin_ = nullptr;
  std::size_t body_size_ = 0;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool expects_continue_ = false;
  std::function<void(std::string_view)> on_data_;
  std::function<void()> on_end_;
};

}  // namespace multinode::http

// Request accessors and the error category of the HTTP server.
#include <multinode/http.hpp>

#include "http/text.hpp"

#include <string>

namespace multinode::http {

std::string_view Request::path() const noexcept {
  const std::size_t question = target_.find('?');
  return question == std::string_view::npos ? target_ : target_.substr(0, question);
}

std::string_view Request::query() const noexcept {
  const std::size_t question = target_.find('?');
  return question == std::string_view::npos ? std::string_view{} : target_.substr(question + 1);
}

const Field* Request::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < header_count_; ++i)
    if (detail::iequals(fields_[i].name, name)) return &fields_[i];
  return nullptr;
}

std::string_view Request::header(std::string_view name) const noexcept {
  const Field* field = find(name);
  return field ? field->value : std::string_view{};
}

std::span<const Field> Request::trailers() const noexcept {
  return {fields_.data() + header_count_, fields_.size() - header_count_};
}

void Request::reset() noexcept {
  method_ = {};
  target_ = {};
  version_ = 11;
  fields_.clear();
  header_count_ = 0;
  body_begin_ = nullptr;
  body_size_ = 0;
  content_length_.reset();
  chunked_ = false;
  keep_alive_ = true;
  expects_continue_ = false;
  on_data_ = nullptr;
  on_end_ = nullptr;
}

void Request::rebase(const char* old_base, char* new_base) noexcept {
  auto move = [&](std::string_view view) -> std::string_view {
    if (view.data() == nullptr) return view;
    return {new_base + (view.data() - old_base), view.size()};
  };
  method_ = move(method_);
  target_ = move(target_);
  for (Field& field : fields_) {
    field.name = move(field.name);
    field.value = move(field.value);
  }
  if (body_begin_ != nullptr) body_begin_ = new_base + (body_begin_ - old_base);
}

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "multinode.http"; }
  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::bad_request_line:
        return "malformed request line";
      case error::bad_target:
        return "malformed request-target (empty, or a byte outside visible ASCII)";
      case error::target_too_long:
        return "request-target too long";
      case error::unsupported_version:
        return "HTTP version not supported";
      case error::header_too_large:
        return "request head too large";
      case error::too_many_headers:
        return "too many header fields";
      case error::bad_header:
        return "malformed header field";
      case error::obs_fold:
        return "obsolete line folding";
      case error::missing_host:
        return "HTTP/1.1 request without Host";
      case error::duplicate_host:
        return "more than one Host field";
      case error::bad_content_length:
        return "malformed or repeated Content-Length";
      case error::bad_transfer_encoding:
        return "Transfer-Encoding whose final coding is not a single chunked";
      case error::unsupported_transfer_coding:
        return "unsupported transfer coding";
      case error::transfer_encoding_with_content_length:
        return "both Transfer-Encoding and Content-Length";
      case error::transfer_encoding_on_http10:
        return "Transfer-Encoding in an HTTP/1.0 request";
      case error::body_too_large:
        return "request body too large";
      case error::bad_chunk:
        return "malformed chunk";
      case error::chunk_extension_too_long:
        return "chunk extensions too long";
      case error::trailers_too_large:
        return "trailer section too large";
      case error::expectation_failed:
        return "unsupported expectation";
      case error::bad_host:
        return "malformed Host (expected host[:port], no spaces, lists, paths or userinfo)";
    }
    return "unknown HTTP error";
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const Category instance;
  return instance;
}

unsigned status_of(error e) noexcept {
  switch (e) {
    case error::target_too_long:
      return 414;
    case error::unsupported_version:
      return 505;
    case error::header_too_large:
    case error::too_many_headers:
    case error::trailers_too_large:
      return 431;
    case error::unsupported_transfer_coding:
      return 501;
    case error::body_too_large:
      return 413;
    case error::expectation_failed:
      return 417;
    default:
      return 400;
  }
}

}  // namespace multinode::http

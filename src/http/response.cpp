// Response handles: each names one exchange of one connection and keeps the
// connection object alive; every operation goes through the connection.
#include <multinode/http.hpp>

#include "http/connection.hpp"
#include "http/text.hpp"

#include <array>
#include <stdexcept>

namespace multinode::http {

namespace {

// field-value bytes: VCHAR, obs-text, SP, HTAB. CR or LF would split the response.
constexpr std::array<bool, 256> value_chars = [] {
  std::array<bool, 256> table{};
  for (int c = 0x20; c < 0x100; ++c) table[c] = c != 0x7F;
  table['\t'] = true;
  return table;
}();

void check_field(std::string_view name, std::string_view value) {
  if (!detail::is_token(name)) throw std::invalid_argument("http: header name is not a token");
  bool ok = true;
  for (char c : value) ok &= value_chars[static_cast<unsigned char>(c)];
  if (!ok) throw std::invalid_argument("http: control character in header value");
  if ((name.size() == 14 && detail::iequals(name, "content-length")) ||
      (name.size() == 17 && detail::iequals(name, "transfer-encoding")))
    throw std::invalid_argument(
        "http: the server frames responses itself (Content-Length, Transfer-Encoding)");
}

}  // namespace

Response::Response(detail::Connection* connection, std::uint64_t generation) noexcept
    : connection_(connection), generation_(generation) {
  connection_->handle_added(generation_);
}

Response::Response(const Response& other) noexcept
    : connection_(other.connection_), generation_(other.generation_) {
  if (connection_) connection_->handle_added(generation_);
}

Response::Response(Response&& other) noexcept
    : connection_(other.connection_), generation_(other.generation_) {
  other.connection_ = nullptr;
}

Response& Response::operator=(const Response& other) noexcept {
  if (this != &other) {
    if (other.connection_) other.connection_->handle_added(other.generation_);
    detach();
    connection_ = other.connection_;
    generation_ = other.generation_;
  }
  return *this;
}

Response& Response::operator=(Response&& other) noexcept {
  if (this != &other) {
    detach();
    connection_ = other.connection_;
    generation_ = other.generation_;
    other.connection_ = nullptr;
  }
  return *this;
}

Response::~Response() {
  detach();
}

void Response::detach() noexcept {
  if (connection_ == nullptr) return;
  detail::Connection* connection = connection_;
  connection_ = nullptr;
  connection->handle_dropped(generation_);
}

Response& Response::status(unsigned code) {
  if (code < 200 || code > 999) throw std::invalid_argument("http: response status must be 200-999");
  if (connection_) connection_->set_status(generation_, code);
  return *this;
}

Response& Response::set(std::string_view name, std::string_view value) {
  check_field(name, value);
  if (connection_) connection_->add_header(generation_, name, value);
  return *this;
}

Response& Response::trailer(std::string_view name, std::string_view value) {
  check_field(name, value);
  if (connection_) connection_->add_trailer(generation_, name, value);
  return *this;
}

bool Response::write(std::string_view chunk) {
  return connection_ != nullptr && connection_->write_body(generation_, chunk);
}

void Response::end(std::string_view body) {
  if (connection_) connection_->end_response(generation_, body, nullptr);
}

void Response::end(std::string&& body) {
  if (connection_) connection_->end_response(generation_, {}, &body);
}

void Response::on_drain(std::function<void()> handler) {
  if (connection_) connection_->set_drain_handler(generation_, std::move(handler));
}

std::optional<Handover> Response::take_over(TakenOver& owner, unsigned status) {
  if (connection_ == nullptr) return std::nullopt;
  return connection_->take_over(generation_, owner, status);
}

bool Response::ended() const noexcept {
  return connection_ == nullptr || connection_->response_ended(generation_);
}

bool Response::connected() const noexcept {
  return connection_ != nullptr && connection_->open();
}

}  // namespace multinode::http

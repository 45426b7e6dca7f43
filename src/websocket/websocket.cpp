// The opening handshake (RFC 6455 §4.2): is_upgrade(), accept(), and the shared
// broadcast Frame.
#include <multinode/websocket.hpp>

#include "http/text.hpp"
#include "websocket/decoder.hpp"
#include "websocket/session.hpp"

#include <boost/uuid/detail/sha1.hpp>

#include <array>
#include <stdexcept>

namespace multinode::websocket {

namespace {

using http::detail::for_each_list_element;
using http::detail::iequals;

// Some field named `name` lists `token` (comma-separated, case-insensitive);
// every field line of that name counts (a client may send the list over several).
bool lists_token(const http::Request& request, std::string_view name, std::string_view token) {
  bool found = false;
  for (const http::Field& field : request.headers()) {
    if (!iequals(field.name, name)) continue;
    for_each_list_element(field.value, [&](std::string_view element) {
      if (iequals(element, token)) found = true;
      return !found;
    });
    if (found) return true;
  }
  return false;
}

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (std::size_t i = 0; i < size; i += 3) {
    const unsigned a = data[i];
    const unsigned b = i + 1 < size ? data[i + 1] : 0;
    const unsigned c = i + 2 < size ? data[i + 2] : 0;
    const unsigned triple = (a << 16) | (b << 8) | c;
    out.push_back(base64_alphabet[(triple >> 18) & 0x3F]);
    out.push_back(base64_alphabet[(triple >> 12) & 0x3F]);
    out.push_back(i + 1 < size ? base64_alphabet[(triple >> 6) & 0x3F] : '=');
    out.push_back(i + 2 < size ? base64_alphabet[triple & 0x3F] : '=');
  }
  return out;
}

// Sec-WebSocket-Key is the base64 of 16 bytes (§4.1): 22 characters and "==", the
// last of the 22 carrying only 2 bits (A, Q, g or w).
bool is_valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (base64_alphabet.find(key[i]) == std::string_view::npos) return false;
  return base64_alphabet.find(key[21]) % 16 == 0;
}

}  // namespace

namespace detail {

// Sec-WebSocket-Accept: base64(SHA-1(key + the GUID of §1.3)).
std::string accept_key(std::string_view key) {
  boost::uuids::detail::sha1 sha1;
  sha1.process_bytes(key.data(), key.size());
  constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  sha1.process_bytes(guid.data(), guid.size());
  boost::uuids::detail::sha1::digest_type digest;
  sha1.get_digest(digest);
  std::array<unsigned char, 20> bytes{};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) bytes[i * 4 + j] = static_cast<unsigned char>(digest[i] >> (24 - 8 * j));
  return base64(bytes.data(), bytes.size());
}

}  // namespace detail

Frame Frame::text(std::string_view data) {
  if (!detail::is_utf8(data.data(), data.size()))
    throw std::invalid_argument("websocket: a text Frame must be UTF-8: use Frame::binary");
  return Frame(Kind::text, data.size(),
               std::make_shared<const std::string>(detail::encode_frame(detail::Opcode::text, data)));
}

Frame Frame::binary(std::string_view data) {
  return Frame(Kind::binary, data.size(),
               std::make_shared<const std::string>(detail::encode_frame(detail::Opcode::binary, data)));
}

bool is_upgrade(const http::Request& request) noexcept {
  return request.method() == "GET" && lists_token(request, "connection", "upgrade") &&
         lists_token(request, "upgrade", "websocket");
}

std::shared_ptr<Connection> accept(http::Request& request, http::Response& response, const Options& options) {
  auto refuse = [&response](unsigned status, std::string_view why) -> std::shared_ptr<Connection> {
    response.status(status);
    if (status == 426) response.set("Upgrade", "websocket").set("Sec-WebSocket-Version", "13");
    response.set("Content-Type", "text/plain");
    response.end(why);
    return nullptr;
  };
  if (request.method() != "GET" || request.version() < 11)
    return refuse(400, "a WebSocket opening handshake is a GET request over HTTP/1.1\n");
  if (!is_upgrade(request))
    return refuse(
        426, "this resource speaks WebSocket: send an upgrade (Connection: upgrade, Upgrade: websocket)\n");
  if (http::detail::trim_whitespace(request.header("sec-websocket-version")) != "13")
    return refuse(426, "unsupported WebSocket version: this server speaks Sec-WebSocket-Version 13\n");
  const std::string_view key = http::detail::trim_whitespace(request.header("sec-websocket-key"));
  if (!is_valid_key(key))
    return refuse(400, "missing or malformed Sec-WebSocket-Key (the base64 of 16 random bytes)\n");
  if (request.chunked() || request.content_length().value_or(0) > 0)
    return refuse(400, "a WebSocket opening handshake has no body\n");
  if (!options.allowed_origins.empty()) {
    const std::string_view origin = request.header("origin");
    bool allowed = false;
    for (const std::string& candidate : options.allowed_origins) allowed |= iequals(candidate, origin);
    if (!allowed) return refuse(403, "this Origin may not open a WebSocket here\n");
  }
  std::string subprotocol;
  for (const std::string& candidate : options.subprotocols) {
    if (lists_token(request, "sec-websocket-protocol", candidate)) {
      subprotocol = candidate;
      break;
    }
  }

  std::optional<detail::DeflateAgreement> deflate;
  if (options.permessage_deflate) {
    std::string offers;  // every field line, as one list
    for (const http::Field& field : request.headers()) {
      if (!iequals(field.name, "sec-websocket-extensions")) continue;
      if (!offers.empty()) offers += ", ";
      offers += field.value;
    }
    if (!offers.empty()) deflate = detail::negotiate_deflate(offers, options);
  }

  response.set("Upgrade", "websocket");
  response.set("Sec-WebSocket-Accept", detail::accept_key(key));
  if (!subprotocol.empty()) response.set("Sec-WebSocket-Protocol", subprotocol);
  if (deflate) response.set("Sec-WebSocket-Extensions", deflate->response);
  auto session = std::make_shared<detail::Session>(
      options, std::move(subprotocol),
      deflate ? std::optional<detail::DeflateParameters>(deflate->parameters) : std::nullopt);
  std::optional<http::Handover> handover = response.take_over(*session, 101);
  if (!handover) return nullptr;  // answered already, or the connection is gone
  session->start(std::move(*handover));
  return session;
}

}  // namespace multinode::websocket

// A raw-bytes WebSocket client for the server tests: it builds frames bit by bit
// (any opcode, reserved bits, masked or not, cut anywhere) and reads the server's
// frames back, with bounded waits over a blocking loopback socket.
#pragma once

#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace multinode::websocket::test {

using namespace std::chrono_literals;

struct WireFrame {
  bool fin = true;
  unsigned rsv = 0;
  unsigned opcode = 0;
  std::string payload;
  // A close frame's code (1005 when it carried none) and reason.
  std::uint16_t close_code() const {
    if (payload.size() < 2) return 1005;
    return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                      static_cast<unsigned char>(payload[1]));
  }
  std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : std::string(); }
};

// One client frame: masked unless told otherwise, with any header bits.
inline std::string frame(unsigned opcode, std::string_view payload, bool fin = true, bool masked = true,
                         unsigned rsv = 0) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv << 4) | opcode));
  const unsigned char mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xFF));
  }
  const unsigned char key[4] = {0x37, 0xFA, 0x21, 0x3D};
  if (masked) out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    out.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return out;
}

inline std::string close_frame(std::uint16_t code, std::string_view reason = {}) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason);
  return frame(0x8, payload);
}

inline std::string upgrade_request(std::string_view target = "/", std::string_view extra = {}) {
  return "GET " + std::string(target) +
         " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
         std::string(extra) + "\r\n";
}

// The connection, sends and reads are the HTTP test client's (http_test_client.hpp);
// this adds the upgrade handshake and WebSocket frames on top.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port, int receive_buffer = 0) : connection_(port, receive_buffer) {}

  bool send(std::string_view bytes) { return connection_.send(bytes); }

  // Sends the upgrade request (with the given extra header lines) and reads the
  // response head; returns the status (0 when none came) and keeps the head.
  int handshake(std::string_view extra = {}, std::string_view target = "/") {
    if (!send(upgrade_request(target, extra))) return 0;
    return read_head();
  }
  int read_head(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return 0;
    head_ = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    return std::stoi(head_.substr(9, 3));
  }
  const std::string& head() const noexcept { return head_; }
  // The value of a field of the last head, "" when absent (names compared as sent, case-insensitively).
  std::string header(std::string_view name) const {
    std::string lower_head = lower(head_);
    const std::string key = "\r\n" + lower(std::string(name)) + ":";
    const std::size_t at = lower_head.find(key);
    if (at == std::string::npos) return "";
    std::size_t start = at + key.size();
    while (start < head_.size() && head_[start] == ' ') ++start;
    return head_.substr(start, head_.find("\r\n", start) - start);
  }
  std::string& buffered() noexcept { return connection_.buffered(); }

  // The next frame from the server; nullopt on timeout or end of stream.
  std::optional<WireFrame> read_frame(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto parsed = parse()) return parsed;
      if (!fill(deadline)) return std::nullopt;
    }
  }
  // The server closed the TCP connection (end of stream) within the time.
  bool wait_closed(std::chrono::milliseconds timeout = 5s) { return connection_.wait_closed(timeout); }
  // Reads until the server's close frame and the end of stream; its code, or 0.
  std::uint16_t expect_close(std::chrono::milliseconds timeout = 5s) {
    for (;;) {
      auto next = read_frame(timeout);
      if (!next) return 0;
      if (next->opcode == 0x8) {
        wait_closed(timeout);
        return next->close_code();
      }
    }
  }
  int fd() const noexcept { return connection_.fd(); }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  std::optional<WireFrame> parse() {
    if (buffer_.size() < 2) return std::nullopt;
    const auto b0 = static_cast<unsigned char>(buffer_[0]);
    const auto b1 = static_cast<unsigned char>(buffer_[1]);
    if ((b1 & 0x80) != 0) ADD_FAILURE() << "the server masked a frame";
    std::uint64_t length = b1 & 0x7F;
    std::size_t header = 2;
    if (length == 126) {
      if (buffer_.size() < 4) return std::nullopt;
      length = (static_cast<unsigned char>(buffer_[2]) << 8) | static_cast<unsigned char>(buffer_[3]);
      header = 4;
    } else if (length == 127) {
      if (buffer_.size() < 10) return std::nullopt;
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | static_cast<unsigned char>(buffer_[2 + i]);
      header = 10;
    }
    if (buffer_.size() < header + length) return std::nullopt;
    WireFrame out;
    out.fin = (b0 & 0x80) != 0;
    out.rsv = (b0 >> 4) & 0x7;
    out.opcode = b0 & 0x0F;
    out.payload = buffer_.substr(header, length);
    buffer_.erase(0, header + length);
    return out;
  }
  bool fill(std::chrono::steady_clock::time_point deadline) { return connection_.fill(deadline); }

  http::test::Client connection_;
  std::string& buffer_ = connection_.buffered();
  std::string head_;
};

}  // namespace multinode::websocket::test

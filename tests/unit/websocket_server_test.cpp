// The WebSocket server in-process, spoken to in raw bytes over loopback: the cases
// of the Autobahn|Testsuite sections 1-7 (framing, ping/pong, reserved bits,
// opcodes, fragmentation, UTF-8, close codes and handshake) and masking, the
// limits (message size, slow clients, dead peers), idle buffers given back,
// broadcast, graceful stop, and the take-over hook with CONNECT; UTF-8 failing
// fast inside a frame not whole yet (Autobahn 6.4); permessage-deflate (the
// sections 12 and 13: compressed text and binary, fragments, context takeover,
// RSV1 out of place, bad deflate data, the inflated size bound), frames made with zlib.
#include "http_test_client.hpp"
#include "websocket/deflate.hpp"
#include "websocket/session.hpp"
#include "websocket_test_client.hpp"

#include <multinode/websocket.hpp>

#include <boost/asio/write.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

namespace multinode::websocket::test {
namespace {

using http::test::TestServer;

// What the echo server saw, touched on its io thread only.
struct Seen {
  std::vector<std::shared_ptr<Connection>> connections;
  std::vector<std::uint16_t> close_codes;
  std::vector<std::string> close_reasons;
  std::vector<Kind> kinds;
  int drains = 0;
};

// Echoes each message with its kind; "close:<code>" closes with that code,
// "flood:<n>" sends n messages of 64 KiB (for the slow-client bound).
struct EchoServer {
  explicit EchoServer(Options ws = {}, http::Options http_options = {})
      : options(std::move(ws)),
        server([this](http::Request& request, http::Response& response) { handle(request, response); },
               http_options) {}

  void handle(http::Request& request, http::Response& response) {
    auto socket = accept(request, response, options);
    if (!socket) return;
    seen.connections.push_back(socket);
    Connection* connection = socket.get();
    socket->on_message([this, connection](std::string_view data, Kind kind) {
      seen.kinds.push_back(kind);
      if (data.starts_with("close:")) {
        connection->close(static_cast<std::uint16_t>(std::stoi(std::string(data.substr(6)))), "bye");
        return;
      }
      if (data.starts_with("flood:")) {
        const std::string block(std::size_t{64} * 1024, 'f');
        const int count = std::stoi(std::string(data.substr(6)));
        for (int i = 0; i < count && connection->is_open(); ++i) connection->send(block, Kind::binary);
        return;
      }
      connection->send(data, kind);
    });
    socket->on_close([this](std::uint16_t code, std::string_view reason) {
      seen.close_codes.push_back(code);
      seen.close_reasons.emplace_back(reason);
    });
    socket->on_drain([this] { ++seen.drains; });
  }

  std::vector<std::uint16_t> close_codes() {
    std::vector<std::uint16_t> copy;
    server.on_io([&] { copy = seen.close_codes; });
    return copy;
  }
  // Waits (bounded) until on_close ran `count` times.
  std::vector<std::uint16_t> wait_close_codes(std::size_t count) {
    for (int i = 0; i < 500; ++i) {
      auto codes = close_codes();
      if (codes.size() >= count) return codes;
      std::this_thread::sleep_for(10ms);
    }
    return close_codes();
  }
  // How many open sessions hold more than nothing of what `held` measures (on the server's thread).
  int sessions_holding(std::size_t (detail::Session::*held)() const) {
    int holding = 0;
    server.on_io([&] {
      for (auto& connection : seen.connections)
        if ((static_cast<detail::Session*>(connection.get())->*held)() > 0) ++holding;
    });
    return holding;
  }
  ~EchoServer() {
    server.on_io([this] { seen.connections.clear(); });
  }

  Options options;
  Seen seen;
  TestServer server;
};

std::uint16_t port_of(EchoServer& echo) {
  return echo.server.port();
}

// A client with the handshake done.
std::unique_ptr<RawClient> connect(EchoServer& echo, int receive_buffer = 0) {
  auto client = std::make_unique<RawClient>(port_of(echo), receive_buffer);
  EXPECT_EQ(client->handshake(), 101) << client->head();
  return client;
}

// Sends bytes that break a rule and expects the close code, then the TCP close.
void expect_failure(EchoServer& echo, std::string_view bytes, std::uint16_t code) {
  auto client = connect(echo);
  ASSERT_TRUE(client->send(bytes));
  EXPECT_EQ(client->expect_close(), code);
}

// --- Opening handshake -------------------------------------------------------

TEST(WebSocketHandshake, AnswersTheRfcExampleKey) {
  EchoServer echo;
  RawClient client(port_of(echo));
  ASSERT_EQ(client.handshake(), 101) << client.head();
  EXPECT_EQ(client.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(client.header("Upgrade"), "websocket");
  EXPECT_EQ(client.header("Connection"), "upgrade");
  EXPECT_EQ(client.header("Content-Length"), "");
  EXPECT_EQ(client.header("Transfer-Encoding"), "");
}

TEST(WebSocketHandshake, RefusesWhatIsNotAValidUpgrade) {
  EchoServer echo;
  {
    http::test::Client plain(port_of(echo));
    ASSERT_TRUE(plain.send(http::test::get("/")));
    auto response = plain.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 426);
    EXPECT_EQ(response->header("Sec-WebSocket-Version"), "13");
  }
  const std::string base = "GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n";
  struct Case {
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {base + "Sec-WebSocket-Version: 13\r\n\r\n", 400},                                // no key
      {base + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short==\r\n\r\n", 400},  // malformed key
      {base + "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426},
      {"POST / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
       400},
  };
  for (const Case& c : cases) {
    http::test::Client client(port_of(echo));
    ASSERT_TRUE(client.send(c.request));
    auto response = client.read_response();
    ASSERT_TRUE(response) << c.request;
    EXPECT_EQ(response->status, c.status) << c.request;
  }
}

TEST(WebSocketHandshake, ChecksTheOriginAndSelectsASubprotocol) {
  Options options;
  options.allowed_origins = {"https://chat.example"};
  options.subprotocols = {"chat.v2", "chat.v1"};
  EchoServer echo(options);
  {
    RawClient refused(port_of(echo));
    EXPECT_EQ(refused.handshake("Origin: https://evil.example\r\n"), 403);
  }
  RawClient client(port_of(echo));
  ASSERT_EQ(client.handshake("Origin: HTTPS://chat.example\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n"),
            101);
  EXPECT_EQ(client.header("Sec-WebSocket-Protocol"), "chat.v2");
  RawClient none(port_of(echo));
  ASSERT_EQ(none.handshake("Origin: https://chat.example\r\nSec-WebSocket-Protocol: other\r\n"), 101);
  EXPECT_EQ(none.header("Sec-WebSocket-Protocol"), "");
}

TEST(WebSocketHandshake, AFrameRightBehindTheRequestIsNotLost) {
  EchoServer echo;
  RawClient client(port_of(echo));
  ASSERT_TRUE(client.send(upgrade_request() + frame(0x1, "early")));
  ASSERT_EQ(client.read_head(), 101);
  auto reply = client.read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, "early");
}

// --- 1 Framing -----------------------------------------------------------------

TEST(WebSocketFraming, EchoesTextAndBinaryOfEveryLengthEncoding) {
  EchoServer echo;
  auto client = connect(echo);
  for (std::size_t size : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 300000u}) {
    for (unsigned opcode : {0x1u, 0x2u}) {
      const std::string payload(size, opcode == 0x1 ? 'a' : '\xfe');
      ASSERT_TRUE(client->send(frame(opcode, payload)));
      auto reply = client->read_frame();
      ASSERT_TRUE(reply) << size;
      EXPECT_EQ(reply->opcode, opcode);
      EXPECT_TRUE(reply->fin);
      EXPECT_EQ(reply->payload.size(), size);
      EXPECT_EQ(reply->payload, payload);
    }
  }
}

TEST(WebSocketFraming, AFrameCutAtEveryByteArrivesWhole) {
  EchoServer echo;
  auto client = connect(echo);
  const std::string bytes = frame(0x1, std::string(200, 'z'));
  for (std::size_t cut = 1; cut < bytes.size(); cut += 7) {
    ASSERT_TRUE(client->send(bytes.substr(0, cut)));
    std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(client->send(bytes.substr(cut)));
    auto reply = client->read_frame();
    ASSERT_TRUE(reply) << cut;
    EXPECT_EQ(reply->payload, std::string(200, 'z'));
  }
}

TEST(WebSocketFraming, ManyMessagesInOneWriteAreAnsweredInOrder) {
  EchoServer echo;
  auto client = connect(echo);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += frame(0x1, std::string("m").append(std::to_string(i)));
  ASSERT_TRUE(client->send(batch));
  for (int i = 0; i < 100; ++i) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply) << i;
    EXPECT_EQ(reply->payload, std::string("m").append(std::to_string(i)));
  }
}

TEST(WebSocketFraming, AnUnmaskedClientFrameIsAProtocolError) {
  EchoServer echo;
  expect_failure(echo, frame(0x1, "hello", true, false), close_code::protocol_error);
}

TEST(WebSocketFraming, AMessageOverTheLimitCloses1009) {
  Options options;
  options.max_message_bytes = 1000;
  EchoServer echo(options);
  expect_failure(echo, frame(0x2, std::string(1001, 'x')), close_code::message_too_big);
  // Fragments count together.
  expect_failure(echo, frame(0x2, std::string(600, 'x'), false) + frame(0x0, std::string(600, 'x')),
                 close_code::message_too_big);
  auto client = connect(echo);
  ASSERT_TRUE(client->send(frame(0x2, std::string(1000, 'x'))));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload.size(), 1000u);
}

// --- 2 Ping/pong -----------------------------------------------------------------

TEST(WebSocketPingPong, APingIsAnsweredWithItsPayload) {
  EchoServer echo;
  auto client = connect(echo);
  for (std::size_t size : {0u, 10u, 125u}) {
    const std::string payload(size, 'p');
    ASSERT_TRUE(client->send(frame(0x9, payload)));
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->opcode, 0xAu);
    EXPECT_EQ(reply->payload, payload);
  }
  // An unsolicited pong is ignored.
  ASSERT_TRUE(client->send(frame(0xA, "unasked") + frame(0x1, "after")));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, "after");
}

TEST(WebSocketPingPong, OversizedOrFragmentedPingsAreProtocolErrors) {
  EchoServer echo;
  expect_failure(echo, frame(0x9, std::string(126, 'p')), close_code::protocol_error);
  expect_failure(echo, frame(0x9, "half", false), close_code::protocol_error);
}

TEST(WebSocketPingPong, TheServerPingsAnIdlePeerAndClosesADeadOne) {
  Options options;
  options.ping_interval = 100ms;
  options.pong_timeout = 200ms;
  http::Options http_options;
  http_options.stop_grace = 40ms;  // a sweep every 10 ms
  EchoServer echo(options, http_options);
  auto alive = connect(echo);
  auto dead = connect(echo);
  // The live client answers every ping for a while; the dead one never reads.
  int pings = 0;
  for (int i = 0; i < 5; ++i) {
    auto ping = alive->read_frame(3s);
    ASSERT_TRUE(ping);
    ASSERT_EQ(ping->opcode, 0x9u);
    ++pings;
    ASSERT_TRUE(alive->send(frame(0xA, ping->payload)));
  }
  EXPECT_EQ(pings, 5);
  EXPECT_TRUE(dead->wait_closed(5s));
  const auto codes = echo.wait_close_codes(1);
  ASSERT_EQ(codes.size(), 1u);
  EXPECT_EQ(codes[0], close_code::abnormal);
  ASSERT_TRUE(alive->send(frame(0x1, "still here")));
  auto reply = alive->read_frame();
  ASSERT_TRUE(reply);
  while (reply && reply->opcode == 0x9) reply = alive->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, "still here");
}

// --- 3 Reserved bits, 4 Opcodes ---------------------------------------------------

TEST(WebSocketReserved, ReservedBitsAreAProtocolErrorAfterWhatCameBefore) {
  EchoServer echo;
  for (unsigned rsv = 1; rsv <= 7; ++rsv) {
    auto client = connect(echo);
    ASSERT_TRUE(client->send(frame(0x1, "before") + frame(0x1, "bad", true, true, rsv) + frame(0x9, "")));
    auto first = client->read_frame();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->payload, "before");
    EXPECT_EQ(client->expect_close(), close_code::protocol_error) << rsv;
  }
}

TEST(WebSocketOpcodes, ReservedOpcodesAreProtocolErrors) {
  EchoServer echo;
  for (unsigned opcode : {3u, 4u, 5u, 6u, 7u, 0xBu, 0xCu, 0xDu, 0xEu, 0xFu})
    expect_failure(echo, frame(opcode, "x"), close_code::protocol_error);
}

// --- 5 Fragmentation ---------------------------------------------------------------

TEST(WebSocketFragmentation, FragmentsAreJoinedWithControlFramesBetween) {
  EchoServer echo;
  auto client = connect(echo);
  ASSERT_TRUE(client->send(frame(0x1, "frag", false) + frame(0x9, "ping!") + frame(0x0, "men", false) +
                           frame(0x0, "ted")));
  auto pong = client->read_frame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 0xAu);
  EXPECT_EQ(pong->payload, "ping!");
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x1u);
  EXPECT_EQ(reply->payload, "fragmented");
  // Binary, one byte per fragment, each in its own write.
  ASSERT_TRUE(client->send(frame(0x2, "a", false)));
  for (char c : std::string("bcdefg")) {
    std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(client->send(frame(0x0, std::string(1, c), c == 'g')));
  }
  reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x2u);
  EXPECT_EQ(reply->payload, "abcdefg");
}

TEST(WebSocketFragmentation, ContinuationsOutOfPlaceAreProtocolErrors) {
  EchoServer echo;
  expect_failure(echo, frame(0x0, "no start"), close_code::protocol_error);
  expect_failure(echo, frame(0x1, "start", false) + frame(0x1, "again"), close_code::protocol_error);
  expect_failure(echo, frame(0x2, "start", false) + frame(0x2, "again", false), close_code::protocol_error);
}

// --- 6 UTF-8 ----------------------------------------------------------------------

TEST(WebSocketUtf8, ValidTextPassesAndInvalidCloses1007) {
  EchoServer echo;
  auto client = connect(echo);
  const std::string valid = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
  ASSERT_TRUE(client->send(frame(0x1, valid)));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, valid);
  for (const std::string bad : {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
                                "\x80", "abc\xce", "\xf8\x88\x80\x80\x80"})
    expect_failure(echo, frame(0x1, bad), close_code::invalid_payload);
  // Binary is not checked.
  ASSERT_TRUE(client->send(frame(0x2, "\xff\xfe")));
  reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, "\xff\xfe");
}

TEST(WebSocketUtf8, FragmentsSplitInsideACodePoint) {
  EchoServer echo;
  auto client = connect(echo);
  const std::string text = "\xf0\x9f\x98\x80\xe2\x82\xac";  // U+1F600, U+20AC
  // Every byte its own fragment.
  std::string bytes = frame(0x1, text.substr(0, 1), false);
  for (std::size_t i = 1; i < text.size(); ++i) bytes += frame(0x0, text.substr(i, 1), i + 1 == text.size());
  ASSERT_TRUE(client->send(bytes));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, text);
  // A code point left open at the end of the message; a bad byte in a middle fragment.
  expect_failure(echo, frame(0x1, "ok\xf0\x9f", false) + frame(0x0, "\x98"), close_code::invalid_payload);
  expect_failure(echo, frame(0x1, "ok\xf0", false) + frame(0x0, "\x28", false), close_code::invalid_payload);
}

// Autobahn 6.4: invalid text fails at the byte that cannot be UTF-8, before the
// rest of its frame comes (the rest is never sent here: waiting for it would time out).
TEST(WebSocketUtf8, FailsFastInsideAFrameNotWholeYet) {
  EchoServer echo;
  {
    // One frame of 20 bytes, of which the first 6 come: "hello" and a byte no UTF-8 has.
    auto client = connect(echo);
    const std::string whole = frame(0x1, std::string("hello\xff") + std::string(14, 'x'));
    ASSERT_TRUE(client->send(whole.substr(0, 2 + 4 + 6)));
    EXPECT_EQ(client->expect_close(), close_code::invalid_payload);
  }
  {
    // A code point split between fragments, its second byte wrong, in a fragment that has not all arrived.
    auto client = connect(echo);
    const std::string second = frame(0x0, std::string("\x28") + std::string(30, 'y'));
    ASSERT_TRUE(client->send(frame(0x1, "ok\xf0\x9f", false) + second.substr(0, 2 + 4 + 1)));
    EXPECT_EQ(client->expect_close(), close_code::invalid_payload);
  }
  {
    // Valid so far: nothing happens until the rest comes, then the echo.
    auto client = connect(echo);
    const std::string text = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    const std::string whole = frame(0x1, text);
    ASSERT_TRUE(client->send(whole.substr(0, 8)));  // cut inside the second code point
    EXPECT_FALSE(client->read_frame(100ms));
    ASSERT_TRUE(client->send(whole.substr(8)));
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->payload, text);
  }
}

// --- 12, 13 permessage-deflate (RFC 7692) -------------------------------------------

// The client's side of the compression, with zlib: one stream that takes its
// context over from message to message unless reset.
class ZlibDeflate {
 public:
  explicit ZlibDeflate(int window_bits = 15) {
    EXPECT_EQ(deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY),
              Z_OK);
  }
  ~ZlibDeflate() { deflateEnd(&z_); }
  ZlibDeflate(const ZlibDeflate&) = delete;
  ZlibDeflate& operator=(const ZlibDeflate&) = delete;
  // A message's compressed payload, without the 00 00 ff ff tail.
  std::string compress(std::string_view data) {
    std::string out(data.size() + 64 + data.size() / 100, '\0');
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z_, Z_SYNC_FLUSH), Z_OK);
    EXPECT_GT(z_.avail_out, 0u);
    out.resize(out.size() - z_.avail_out);
    EXPECT_EQ(out.substr(out.size() - 4), std::string("\x00\x00\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
  }
  void reset() { deflateReset(&z_); }

 private:
  z_stream z_{};
};

class ZlibInflate {
 public:
  ZlibInflate() { EXPECT_EQ(inflateInit2(&z_, -15), Z_OK); }
  ~ZlibInflate() { inflateEnd(&z_); }
  ZlibInflate(const ZlibInflate&) = delete;
  ZlibInflate& operator=(const ZlibInflate&) = delete;
  std::string inflate(std::string payload) {
    payload.append("\x00\x00\xff\xff", 4);
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(payload.data());
    z_.avail_in = static_cast<uInt>(payload.size());
    char chunk[16384];
    do {
      z_.next_out = reinterpret_cast<Bytef*>(chunk);
      z_.avail_out = sizeof chunk;
      const int status = ::inflate(&z_, Z_SYNC_FLUSH);
      EXPECT_TRUE(status == Z_OK || status == Z_BUF_ERROR) << status;
      if (status != Z_OK && status != Z_BUF_ERROR) break;
      out.append(chunk, sizeof chunk - z_.avail_out);
    } while (z_.avail_in > 0 || z_.avail_out == 0);
    return out;
  }

 private:
  z_stream z_{};
};

// What a server frame carries, inflated when it has RSV1 (a fresh inflater unless one is given).
std::string message_of(const WireFrame& reply, ZlibInflate* inflater = nullptr) {
  if (reply.rsv != 4) return reply.payload;
  if (inflater != nullptr) return inflater->inflate(reply.payload);
  ZlibInflate fresh;
  return fresh.inflate(reply.payload);
}

Options deflate_options() {
  Options options;
  options.permessage_deflate = true;
  return options;
}

constexpr std::string_view deflate_offer =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

std::unique_ptr<RawClient> connect_deflate(EchoServer& echo, std::string_view offer = deflate_offer) {
  auto client = std::make_unique<RawClient>(port_of(echo));
  EXPECT_EQ(client->handshake(offer), 101) << client->head();
  return client;
}

// Text long enough to be compressed by the server (deflate_threshold), and compressible.
std::string long_text(std::string_view seed = "caf\xc3\xa9 \xf0\x9f\x98\x80 ") {
  std::string text;
  for (int i = 0; text.size() < 4000; ++i) text.append(seed).append(std::to_string(i)).append(" ");
  return text;
}

TEST(WebSocketDeflateNegotiation, AcceptsTheFirstValidOfferAndDeclinesMalformedOnes) {
  const Options options = deflate_options();
  auto response = [&](std::string_view offers) {
    const auto agreed = detail::negotiate_deflate(offers, options);
    return agreed ? agreed->response : std::string("declined");
  };
  const std::string plain = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
  EXPECT_EQ(response("permessage-deflate"), plain);
  EXPECT_EQ(response("permessage-deflate; client_max_window_bits"), plain + "; client_max_window_bits=15");
  EXPECT_EQ(response("permessage-deflate; client_max_window_bits=10"), plain + "; client_max_window_bits=10");
  EXPECT_EQ(response("permessage-deflate; server_max_window_bits=12"), plain + "; server_max_window_bits=12");
  EXPECT_EQ(response("permessage-deflate; server_max_window_bits=\"11\""),
            plain + "; server_max_window_bits=11");
  EXPECT_EQ(response("x-webkit-deflate-frame, permessage-deflate;server_no_context_takeover"), plain);
  // Declined offers, each followed by a valid one that is taken instead.
  for (const char* bad :
       {"permessage-deflate; unknown_parameter", "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=1x", "permessage-deflate; server_max_window_bits=8"}) {
    EXPECT_EQ(response(bad), "declined") << bad;
    EXPECT_EQ(response(std::string(bad) + ", permessage-deflate; client_max_window_bits=9"),
              plain + "; client_max_window_bits=9")
        << bad;
  }
  // A header that cannot be read is not half-trusted.
  for (const char* broken : {"permessage-deflate; ", "permessage-deflate;; x", "permessage-deflate; a=\"",
                             "permessage-deflate; a=\"b c\"", "permessage-deflate x", "=permessage-deflate"})
    EXPECT_EQ(response(broken), "declined") << broken;
  // Our own window and the context takeover are options.
  Options smaller = deflate_options();
  smaller.deflate_window_bits = 10;
  smaller.deflate_context_takeover = true;
  const auto agreed = detail::negotiate_deflate("permessage-deflate; client_max_window_bits", smaller);
  ASSERT_TRUE(agreed);
  EXPECT_EQ(agreed->response, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10");
  EXPECT_FALSE(agreed->parameters.server_no_context_takeover);
  EXPECT_EQ(agreed->parameters.client_max_window_bits, 10);
}

TEST(WebSocketDeflate, OffByDefaultAnOfferGetsNoExtensionAndRsv1IsAProtocolError) {
  EchoServer echo;
  auto client = connect_deflate(echo);
  EXPECT_EQ(client->header("sec-websocket-extensions"), "");
  ZlibDeflate deflater;
  ASSERT_TRUE(client->send(frame(0x1, deflater.compress(long_text()), true, true, 4)));
  EXPECT_EQ(client->expect_close(), close_code::protocol_error);
}

TEST(WebSocketDeflate, CompressedTextAndBinaryAreInflatedAndTheAnswersCompressed) {
  EchoServer echo(deflate_options());
  auto client = connect_deflate(echo);
  EXPECT_EQ(client->header("sec-websocket-extensions"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits=15");
  ZlibDeflate deflater;
  const std::string text = long_text();
  std::string binary;
  for (int i = 0; i < 5000; ++i) binary.push_back(static_cast<char>(i % 7 == 0 ? 0xff : i % 3));
  for (int round = 0; round < 3; ++round) {
    deflater.reset();  // client_no_context_takeover
    ASSERT_TRUE(client->send(frame(0x1, deflater.compress(text), true, true, 4)));
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->opcode, 0x1u);
    EXPECT_EQ(reply->rsv, 4u);  // over deflate_threshold: compressed
    EXPECT_LT(reply->payload.size(), text.size());
    EXPECT_EQ(message_of(*reply), text);  // a fresh inflater: server_no_context_takeover
    deflater.reset();
    ASSERT_TRUE(client->send(frame(0x2, deflater.compress(binary), true, true, 4)));
    reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->opcode, 0x2u);
    EXPECT_EQ(message_of(*reply), binary);
  }
  // Small messages, and uncompressed ones from the client, go uncompressed.
  deflater.reset();
  ASSERT_TRUE(client->send(frame(0x1, deflater.compress("short"), true, true, 4) + frame(0x1, "plain")));
  for (const char* expected : {"short", "plain"}) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->rsv, 0u);
    EXPECT_EQ(reply->payload, expected);
  }
  // An empty compressed message (only the tail's empty block, which is left out).
  ASSERT_TRUE(
      client->send(frame(0x2, "", true, true, 4) + frame(0x2, std::string("\x00", 1), true, true, 4)));
  for (int i = 0; i < 2; ++i) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->payload, "");
  }
}

TEST(WebSocketDeflate, FragmentedCompressedMessagesWithControlFramesBetween) {
  EchoServer echo(deflate_options());
  auto client = connect_deflate(echo);
  ZlibDeflate deflater;
  const std::string text = long_text();
  const std::string compressed = deflater.compress(text);
  // RSV1 on the first frame only; cut at every 1/3, and inside the compressed stream anywhere.
  const std::size_t third = compressed.size() / 3;
  ASSERT_TRUE(client->send(frame(0x1, compressed.substr(0, third), false, true, 4) + frame(0x9, "ping") +
                           frame(0x0, compressed.substr(third, third), false) +
                           frame(0x0, compressed.substr(2 * third))));
  auto pong = client->read_frame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 0xAu);
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(message_of(*reply), text);
  // Byte by byte: every frame cut at every byte (the inflater sees each part as it comes).
  deflater.reset();
  const std::string bytes = frame(0x1, deflater.compress(text), true, true, 4);
  for (char byte : bytes) ASSERT_TRUE(client->send(std::string_view(&byte, 1)));
  reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(message_of(*reply), text);
}

TEST(WebSocketDeflate, ContextTakeoverWhenAgreedAndAResetInflaterWhenNot) {
  {
    Options options = deflate_options();
    options.deflate_context_takeover = true;
    EchoServer echo(options);
    auto client = connect_deflate(echo, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    EXPECT_EQ(client->header("sec-websocket-extensions"), "permessage-deflate");
    ZlibDeflate deflater;
    ZlibInflate inflater;  // one for the whole connection: the server takes its context over
    const std::string text = long_text();
    std::vector<std::size_t> sizes;
    for (int round = 0; round < 3; ++round) {
      ASSERT_TRUE(client->send(frame(0x1, deflater.compress(text), true, true, 4)));
      auto reply = client->read_frame();
      ASSERT_TRUE(reply);
      EXPECT_EQ(reply->rsv, 4u);
      sizes.push_back(reply->payload.size());
      EXPECT_EQ(message_of(*reply, &inflater), text);
    }
    // The second answer refers to the first: much smaller.
    EXPECT_LT(sizes[1] * 4, sizes[0]);
  }
  {
    // client_no_context_takeover was answered: the server's inflater starts afresh
    // with each message, so a client that refers to its previous message breaks it.
    EchoServer echo(deflate_options());
    auto client = connect_deflate(echo);
    ZlibDeflate deflater;
    const std::string text = long_text();
    ASSERT_TRUE(client->send(frame(0x1, deflater.compress(text), true, true, 4)));
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    ASSERT_TRUE(client->send(frame(0x1, deflater.compress(text), true, true, 4)));  // not reset
    EXPECT_EQ(client->expect_close(), close_code::invalid_payload);
  }
}

TEST(WebSocketDeflate, Rsv1OutOfPlaceIsAProtocolError) {
  EchoServer echo(deflate_options());
  ZlibDeflate deflater;
  const std::string compressed = deflater.compress(long_text());
  const std::size_t half = compressed.size() / 2;
  auto fails = [&](const std::string& bytes, std::uint16_t code) {
    auto client = connect_deflate(echo);
    ASSERT_TRUE(client->send(bytes));
    EXPECT_EQ(client->expect_close(), code);
  };
  // On a continuation, on control frames, RSV2 and RSV3 (still no extension for them).
  fails(frame(0x1, compressed.substr(0, half), false, true, 4) +
            frame(0x0, compressed.substr(half), true, true, 4),
        close_code::protocol_error);
  fails(frame(0x9, "ping", true, true, 4), close_code::protocol_error);
  fails(frame(0xA, "pong", true, true, 4), close_code::protocol_error);
  fails(frame(0x8, "\x03\xe8", true, true, 4), close_code::protocol_error);
  fails(frame(0x1, "x", true, true, 2), close_code::protocol_error);
  fails(frame(0x1, "x", true, true, 1), close_code::protocol_error);
  fails(frame(0x1, "x", true, true, 6), close_code::protocol_error);
}

TEST(WebSocketDeflate, BadDeflateDataAndBadTextInsideCompressionClose1007) {
  EchoServer echo(deflate_options());
  auto fails = [&](const std::string& bytes) {
    auto client = connect_deflate(echo);
    ASSERT_TRUE(client->send(bytes));
    EXPECT_EQ(client->expect_close(), close_code::invalid_payload);
  };
  fails(frame(0x2, "\xff\xff\xff\xff", true, true, 4));  // block type 3 does not exist
  // A stored block whose length does not match its complement.
  fails(frame(0x1, std::string("\x00\x05\x00\x00\x00hello", 10), true, true, 4));
  ZlibDeflate deflater;
  fails(frame(0x1, deflater.compress("not text \xff\xfe"), true, true, 4));
  deflater.reset();
  // Fail fast inside compression too: the frame's second half never comes.
  const std::string bad = deflater.compress(std::string("\xc0\xaf") + long_text());
  auto client = connect_deflate(echo);
  const std::string bytes = frame(0x1, bad, true, true, 4);
  ASSERT_TRUE(client->send(bytes.substr(0, bytes.size() / 2)));
  EXPECT_EQ(client->expect_close(), close_code::invalid_payload);
}

TEST(WebSocketDeflate, TheInflatedSizeIsBoundedAZipBombCloses1009) {
  Options options = deflate_options();
  options.max_message_bytes = std::size_t{64} * 1024;
  EchoServer echo(options);
  ZlibDeflate deflater;
  const std::string bomb = deflater.compress(std::string(std::size_t{16} * 1024 * 1024, '\0'));  // ~16 KiB
  ASSERT_LT(bomb.size(), options.max_message_bytes);
  {
    auto client = connect_deflate(echo);
    ASSERT_TRUE(client->send(frame(0x2, bomb, true, true, 4)));
    EXPECT_EQ(client->expect_close(), close_code::message_too_big);
  }
  // In fragments, each small, the message is bounded as a whole.
  deflater.reset();
  const std::string both = deflater.compress(std::string(std::size_t{80} * 1024, 'a'));
  {
    auto client = connect_deflate(echo);
    ASSERT_TRUE(client->send(frame(0x2, both.substr(0, both.size() / 2), false, true, 4) +
                             frame(0x0, both.substr(both.size() / 2))));
    EXPECT_EQ(client->expect_close(), close_code::message_too_big);
  }
  // Within the limit it passes.
  deflater.reset();
  const std::string fits(options.max_message_bytes, 'z');
  auto client = connect_deflate(echo);
  ASSERT_TRUE(client->send(frame(0x2, deflater.compress(fits), true, true, 4)));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(message_of(*reply), fits);

  // The inflater allocates at most the limit and a step, whatever the ratio.
  detail::Inflater inflater(15, true);
  std::string out;
  const auto result = inflater.inflate(reinterpret_cast<const unsigned char*>(bomb.data()), bomb.size(), out,
                                       options.max_message_bytes, nullptr);
  EXPECT_EQ(result, detail::Inflater::Result::too_big);
  EXPECT_LE(out.capacity(), 2 * options.max_message_bytes + 64);
}

TEST(WebSocketDeflate, BroadcastFramesGoUncompressedToDeflateConnections) {
  EchoServer echo(deflate_options());
  auto plain = connect(echo);
  auto compressing = connect_deflate(echo);
  for (auto* client : {plain.get(), compressing.get()}) {
    ASSERT_TRUE(client->send(frame(0x1, "hi")));
    ASSERT_TRUE(client->read_frame());
  }
  const std::string text = long_text();
  echo.server.on_io([&] {
    const Frame message = Frame::text(text);
    for (auto& connection : echo.seen.connections) EXPECT_TRUE(connection->send(message));
  });
  for (auto* client : {plain.get(), compressing.get()}) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->rsv, 0u);
    EXPECT_EQ(reply->payload, text);
  }
}

// Without context takeover a connection holds no zlib state between messages
// (the streams are the thread's, borrowed for a message), and nothing when idle;
// with takeover each holds its own from its first compressed message on.
TEST(WebSocketMemory, DeflateStateIsPerThreadWithoutContextTakeoverAndKeptWithIt) {
  for (const bool takeover : {false, true}) {
    http::Options http_options;
    http_options.stop_grace = 40ms;  // a sweep every 10 ms
    Options options = deflate_options();
    options.deflate_context_takeover = takeover;
    EchoServer echo(options, http_options);
    constexpr int count = 5;
    std::vector<std::unique_ptr<RawClient>> clients;
    const std::string text = long_text();
    for (int i = 0; i < count; ++i) {
      clients.push_back(connect_deflate(echo));
      ZlibDeflate deflater;
      ASSERT_TRUE(clients.back()->send(frame(0x1, deflater.compress(text), true, true, 4)));
      auto reply = clients.back()->read_frame();
      ASSERT_TRUE(reply);
      ASSERT_EQ(reply->rsv, 4u);
    }
    EXPECT_EQ(echo.sessions_holding(&detail::Session::deflate_held_bytes), takeover ? count : 0);
    auto holding = [&] { return echo.sessions_holding(&detail::Session::held_bytes); };
    int busy = count;
    for (int i = 0; i < 300 && busy > 0; ++i) {
      std::this_thread::sleep_for(10ms);
      busy = holding();
      if (takeover && i == 20) break;  // held for good: the sweeps have run by then
    }
    EXPECT_EQ(busy, takeover ? count : 0) << (takeover ? "with" : "without") << " context takeover";
  }
}

// --- 7 Close ----------------------------------------------------------------------

TEST(WebSocketClose, ThePeersCloseIsEchoedAndTheServerClosesTheTcpConnection) {
  EchoServer echo;
  auto client = connect(echo);
  ASSERT_TRUE(client->send(close_frame(1000, "done") + frame(0x1, "ignored after close")));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x8u);
  EXPECT_EQ(reply->close_code(), 1000);
  EXPECT_TRUE(client->wait_closed());
  const auto codes = echo.wait_close_codes(1);
  ASSERT_EQ(codes.size(), 1u);
  EXPECT_EQ(codes[0], 1000);
  std::vector<std::string> reasons;
  echo.server.on_io([&] { reasons = echo.seen.close_reasons; });
  EXPECT_EQ(reasons.at(0), "done");
}

TEST(WebSocketClose, AnEmptyCloseIsAnsweredEmptyAndReported1005) {
  EchoServer echo;
  auto client = connect(echo);
  ASSERT_TRUE(client->send(frame(0x8, "")));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x8u);
  EXPECT_EQ(reply->payload, "");
  EXPECT_TRUE(client->wait_closed());
  EXPECT_EQ(echo.wait_close_codes(1).at(0), close_code::no_status);
}

TEST(WebSocketClose, ValidCodesAreEchoedInvalidOnesAreProtocolErrors) {
  EchoServer echo;
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    auto client = connect(echo);
    ASSERT_TRUE(client->send(close_frame(code)));
    EXPECT_EQ(client->expect_close(), code);
  }
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    expect_failure(echo, close_frame(code), close_code::protocol_error);
  expect_failure(echo, frame(0x8, "\x03"), close_code::protocol_error);  // a 1-byte payload
  expect_failure(echo, close_frame(1000, "\xce\xba\xe1\xbd"), close_code::invalid_payload);
}

TEST(WebSocketClose, TheServerClosesWithACodeAndReportsIt) {
  EchoServer echo;
  auto client = connect(echo);
  ASSERT_TRUE(client->send(frame(0x1, "close:4001")));
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x8u);
  EXPECT_EQ(reply->close_code(), 4001);
  EXPECT_EQ(reply->close_reason(), "bye");
  // Still open until the client answers.
  ASSERT_TRUE(client->send(close_frame(4001)));
  EXPECT_TRUE(client->wait_closed());
  EXPECT_EQ(echo.wait_close_codes(1).at(0), 4001);
}

TEST(WebSocketClose, APeerThatVanishesIsReported1006AndOthersKeepServing) {
  EchoServer echo;
  auto other = connect(echo);
  {
    auto gone = connect(echo);
    ASSERT_TRUE(gone->send(frame(0x1, "half", false)));
  }
  EXPECT_EQ(echo.wait_close_codes(1).at(0), close_code::abnormal);
  {
    auto bad = connect(echo);
    ASSERT_TRUE(bad->send(frame(0x3, "")));
    EXPECT_EQ(bad->expect_close(), close_code::protocol_error);
  }
  ASSERT_TRUE(other->send(frame(0x1, "fine")));
  auto reply = other->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, "fine");
}

// --- Limits, memory, broadcast, stop ------------------------------------------------

TEST(WebSocketLimits, ASlowClientPastMaxBufferedBytesIsClosed1008) {
  Options options;
  options.max_buffered_bytes = std::size_t{512} * 1024;
  options.handshake_timeout = 500ms;
  EchoServer echo(options);
  auto slow = connect(echo, 4096);
  ASSERT_TRUE(slow->send(frame(0x1, "flood:200")));  // 12.5 MiB it does not read
  const auto codes = echo.wait_close_codes(1);
  ASSERT_EQ(codes.size(), 1u);
  EXPECT_EQ(codes[0], close_code::policy_violation);
  EXPECT_TRUE(slow->wait_closed(5s));
}

TEST(WebSocketLimits, SendReturnsFalsePastHighWaterAndDrainFollows) {
  Options options;
  options.write_high_water = std::size_t{16} * 1024;
  EchoServer echo(options);
  auto client = connect(echo, 4096);
  ASSERT_TRUE(client->send(frame(0x1, "flood:8")));
  std::size_t received = 0;
  while (received < std::size_t{8} * 64 * 1024) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    received += reply->payload.size();
  }
  int drains = 0;
  for (int i = 0; i < 200 && drains == 0; ++i) {
    echo.server.on_io([&] { drains = echo.seen.drains; });
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(drains, 1);
}

TEST(WebSocketMemory, IdleConnectionsGiveTheirBuffersBack) {
  http::Options http_options;
  http_options.stop_grace = 40ms;  // a sweep every 10 ms
  EchoServer echo({}, http_options);
  constexpr int count = 20;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < count; ++i) {
    clients.push_back(connect(echo));
    // A large message in fragments, its echo, and a frame cut in two: every buffer grows.
    ASSERT_TRUE(clients.back()->send(frame(0x2, std::string(100000, 'a'), false) +
                                     frame(0x0, std::string(100000, 'b'))));
    auto reply = clients.back()->read_frame();
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->payload.size(), 200000u);
  }
  auto holding = [&] { return echo.sessions_holding(&detail::Session::held_bytes); };
  int busy = count;
  for (int i = 0; i < 300 && busy > 0; ++i) {
    std::this_thread::sleep_for(10ms);
    busy = holding();
  }
  EXPECT_EQ(busy, 0);
  std::size_t connections = 0;
  echo.server.on_io([&] { connections = echo.seen.connections.size(); });
  EXPECT_EQ(connections, static_cast<std::size_t>(count));
}

// Sends from outside a connection's own read (here a handler on the io thread)
// are written by one deferred pass after the handler returns: several frames to
// one connection go out together, in order.
TEST(WebSocketBroadcast, SendsFromElsewhereAreGatheredAndWrittenAfterTheHandler) {
  EchoServer echo;
  auto client = connect(echo);
  ASSERT_TRUE(client->send(frame(0x1, "hi")));
  ASSERT_TRUE(client->read_frame());
  std::size_t queued_in_handler = 0;
  echo.server.on_io([&] {
    auto& connection = echo.seen.connections.front();
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(connection->send("part " + std::to_string(i)));
    queued_in_handler = connection->buffered_amount();
  });
  EXPECT_EQ(queued_in_handler, std::size_t{3} * (2 + 6));  // three 6-byte frames, not written yet
  for (int i = 0; i < 3; ++i) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->payload, "part " + std::to_string(i));
  }
  std::size_t queued_after = 1;
  echo.server.on_io([&] { queued_after = echo.seen.connections.front()->buffered_amount(); });
  EXPECT_EQ(queued_after, 0u);
}

TEST(WebSocketBroadcast, OneEncodedFrameGoesToEveryConnectionUncopied) {
  EchoServer echo;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect(echo));
  // Every connection is accepted before the broadcast.
  for (auto& client : clients) {
    ASSERT_TRUE(client->send(frame(0x1, "hi")));
    ASSERT_TRUE(client->read_frame());
  }
  long uses_while_queued = 0;
  echo.server.on_io([&] {
    const Frame message = Frame::text("to everyone");
    for (auto& connection : echo.seen.connections) EXPECT_TRUE(connection->send(message));
    uses_while_queued = message.wire().use_count();
    EXPECT_EQ(message.payload_size(), 11u);
    EXPECT_EQ(message.kind(), Kind::text);
  });
  EXPECT_GE(uses_while_queued, 1);  // referenced while queued (never copied), released once written
  for (auto& client : clients) {
    auto reply = client->read_frame();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->opcode, 0x1u);
    EXPECT_EQ(reply->payload, "to everyone");
  }
  EXPECT_THROW(Frame::text("\xff"), std::invalid_argument);
}

TEST(WebSocketStop, AGracefulStopCloses1001AndDrainWaitsForTheHandshake) {
  EchoServer echo;
  auto client = connect(echo);
  echo.server.stop_and_watch_drain();
  auto reply = client->read_frame();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->opcode, 0x8u);
  EXPECT_EQ(reply->close_code(), close_code::going_away);
  EXPECT_EQ(echo.server.drained(), 0);  // still waiting for the client's close
  ASSERT_TRUE(client->send(close_frame(1001)));
  EXPECT_TRUE(client->wait_closed());
  int drained = 0;
  for (int i = 0; i < 300 && drained == 0; ++i) {
    drained = echo.server.drained();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(drained, 1);
  EXPECT_EQ(echo.wait_close_codes(1).at(0), close_code::going_away);
}

// --- The take-over hook, CONNECT -----------------------------------------------------

// A tunnel that echoes raw bytes: the smallest owner of a taken-over connection.
class EchoTunnel final : public http::TakenOver, public std::enable_shared_from_this<EchoTunnel> {
 public:
  void start(http::Handover handover) {
    socket_.emplace(std::move(handover.socket));
    self_ = shared_from_this();
    boost::system::error_code ec;
    if (!handover.received.empty()) boost::asio::write(*socket_, boost::asio::buffer(handover.received), ec);
    read();
  }
  void on_server_stop() override { finish(); }
  void check_deadlines(Clock::time_point) override {}
  void destroy_io_objects() noexcept override {
    finish();
    socket_.reset();
  }

 private:
  void read() {
    socket_->async_read_some(
        boost::asio::buffer(buffer_), [self = shared_from_this()](auto ec, std::size_t n) {
          if (ec || !self->socket_) return self->finish();
          boost::system::error_code write_ec;
          boost::asio::write(*self->socket_, boost::asio::buffer(self->buffer_.data(), n), write_ec);
          self->read();
        });
  }
  void finish() {
    boost::system::error_code ec;
    if (socket_) socket_->close(ec);
    release();
    auto self = std::move(self_);
  }
  std::optional<boost::asio::ip::tcp::socket> socket_;
  std::shared_ptr<EchoTunnel> self_;
  std::array<char, 1024> buffer_{};
};

TEST(HttpTakeOver, AConnectIsRefusedUnlessTheHandlerTakesTheConnectionOver) {
  TestServer server([](http::Request& request, http::Response& response) {
    if (request.target() == "tunnel:443") {
      auto tunnel = std::make_shared<EchoTunnel>();
      auto handover = response.take_over(*tunnel, 200);
      ASSERT_TRUE(handover);
      tunnel->start(std::move(*handover));
      return;
    }
    response.end("a body RFC 9110 forbids here");
  });
  {
    http::test::Client client(server.port());
    ASSERT_TRUE(client.send("CONNECT plain:443 HTTP/1.1\r\nHost: plain:443\r\n\r\n"));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 501);
    EXPECT_TRUE(client.wait_closed());
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.send("CONNECT tunnel:443 HTTP/1.1\r\nHost: tunnel:443\r\n\r\nfirst bytes"));
  ASSERT_EQ(client.read_head(), 200);
  EXPECT_EQ(client.header("Content-Length"), "");
  EXPECT_EQ(client.header("Transfer-Encoding"), "");
  EXPECT_EQ(client.header("Connection"), "");
  ASSERT_TRUE(client.send(" and more"));
  std::string& got = client.buffered();
  for (int i = 0; i < 100 && got.size() < 20; ++i) client.read_frame(20ms);
  EXPECT_EQ(got, "first bytes and more");
  EXPECT_EQ(server.stats().handler_errors, 1u);
}

TEST(HttpTakeOver, ANonUpgradeRequestCannotBeAnswered101) {
  bool refused = false;
  TestServer server([&](http::Request&, http::Response& response) {
    EchoTunnel tunnel;
    refused = !response.take_over(tunnel, 101).has_value();
    response.end("plain");
  });
  http::test::Client client(server.port());
  ASSERT_TRUE(client.send(http::test::get("/")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace multinode::websocket::test

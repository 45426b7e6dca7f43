// The WebSocket server in-process, spoken to in raw bytes over loopback: the cases
// of the Autobahn|Testsuite sections 1-7 (framing, ping/pong, reserved bits,
// opcodes, fragmentation, UTF-8, close codes and handshake) and masking, the
// limits (message size, slow clients, dead peers), idle buffers given back,
// broadcast, graceful stop, and the take-over hook with CONNECT.
#include "http_test_client.hpp"
#include "websocket/session.hpp"
#include "websocket_test_client.hpp"

#include <multinode/websocket.hpp>

#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

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
  auto holding = [&] {
    int busy = 0;
    echo.server.on_io([&] {
      for (auto& connection : echo.seen.connections)
        if (static_cast<detail::Session*>(connection.get())->held_bytes() > 0) ++busy;
    });
    return busy;
  };
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

// Timeouts (slowloris, idle keep-alive, slow body, stuck writes) and graceful stop.
// No test asserts a duration: each sets short timeouts and waits, with a generous
// bound, for what the timeout must cause.
#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace multinode::http::test {
namespace {

Options short_timeouts() {
  Options options;
  options.header_timeout = 300ms;
  options.body_timeout = 300ms;
  options.idle_timeout = 300ms;
  options.write_timeout = 300ms;
  options.linger_timeout = 300ms;
  return options;
}

void hello(Request&, Response& res) {
  res.end("hello\n");
}

// Polls the server's counters until pred holds (at most 10 s).
template <typename Pred>
bool wait_for_stats(TestServer& server, Pred pred) {
  const auto deadline = steady::now() + 10s;
  while (steady::now() < deadline) {
    if (pred(server.stats())) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(HttpTimeouts, SlowlorisIsCutOff) {
  TestServer server(hello, short_timeouts());
  Client client(server.port());
  const std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + std::string(1000, 'z') + "\r\n\r\n";
  // One byte every 50 ms: each read resets nothing, the head's deadline stands.
  std::size_t sent = 0;
  for (; sent < head.size(); ++sent) {
    if (!client.send(head.substr(sent, 1))) break;
    pollfd p{client.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) break;  // the server answered
  }
  ASSERT_LT(sent, head.size()) << "the whole head went through";
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_EQ(server.stats().header_timeouts, 1u);
}

TEST(HttpTimeouts, SilentConnectionIsClosedWithoutAnswer) {
  TestServer server(hello, short_timeouts());
  Client client(server.port());
  std::string rest;
  EXPECT_TRUE(client.wait_closed(10s, &rest));
  EXPECT_EQ(rest, "");
  EXPECT_EQ(server.stats().header_timeouts, 1u);
}

TEST(HttpTimeouts, IdleKeepAliveConnectionIsClosed) {
  TestServer server(hello, short_timeouts());
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  ASSERT_TRUE(client.read_response());
  std::string rest;
  EXPECT_TRUE(client.wait_closed(10s, &rest));
  EXPECT_EQ(rest, "");
  const Stats stats = server.stats();
  EXPECT_EQ(stats.idle_timeouts, 1u);
  EXPECT_EQ(stats.header_timeouts, 0u);
}

TEST(HttpTimeouts, StalledBodyGets408) {
  TestServer server(hello, short_timeouts());
  Client client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n012"));
  auto response = client.read_response(false, 10s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_TRUE(client.wait_closed());
  EXPECT_EQ(server.stats().body_timeouts, 1u);
}

TEST(HttpTimeouts, ClientThatStopsReadingIsCutOff) {
  const std::string big(std::size_t{32} * 1024 * 1024, 'b');
  TestServer server([&](Request&, Response& res) { res.end(big); }, short_timeouts());
  Client client(server.port(), 4096);
  ASSERT_TRUE(client.send(get()));
  // Never read: the server's write makes no progress past the socket buffers.
  EXPECT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.write_timeouts == 1; }));
  EXPECT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.connections_open == 0; }));
}

TEST(HttpTimeouts, ActiveConnectionsAreNotCut) {
  // Requests keep coming faster than the idle timeout: no timeout fires.
  Options options = short_timeouts();
  options.idle_timeout = 2s;
  TestServer server(hello, options);
  Client client(server.port());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.send(get()));
    ASSERT_TRUE(client.read_response());
    std::this_thread::sleep_for(50ms);
  }
  const Stats stats = server.stats();
  EXPECT_EQ(stats.idle_timeouts + stats.header_timeouts, 0u);
  EXPECT_EQ(stats.connections_open, 1u);
}

// --- graceful stop ---

TEST(HttpStop, IdleConnectionsCloseAfterTheGraceAndTheServerStops) {
  Options options;  // default timeouts: only stop() can close these
  options.stop_grace = 200ms;
  TestServer server(hello, options);
  Client idle(server.port());
  ASSERT_TRUE(idle.send(get()));
  ASSERT_TRUE(idle.read_response());
  Client fresh(server.port());
  EXPECT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.connections_open == 2; }));
  server.stop();
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(fresh.wait_closed());
  EXPECT_TRUE(server.wait_stopped(10s));
}

TEST(HttpStop, RequestArrivingDuringTheGraceIsAnsweredWithClose) {
  Options options;
  options.stop_grace = 5s;  // longer than this test waits for anything
  TestServer server(hello, options);
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  ASSERT_TRUE(client.read_response());
  server.stop();
  ASSERT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.connections_open == 1; }));
  ASSERT_TRUE(client.send(get("/late")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(server.wait_stopped(10s));
}

TEST(HttpStop, RequestInFlightIsAnsweredWithCloseThenTheServerStops) {
  std::vector<Response> pending;
  TestServer server([&](Request& req, Response& res) {
    if (req.target() == "/later") {
      pending.push_back(res);
      return;
    }
    res.end("now\n");
  });
  OnExit drop_pending([&] { server.on_io([&] { pending.clear(); }); });
  Client busy(server.port());
  Client idle(server.port());
  ASSERT_TRUE(idle.send(get()));
  ASSERT_TRUE(idle.read_response());
  ASSERT_TRUE(busy.send(get("/later") + get("/pipelined")));
  ASSERT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.requests == 2; }));

  server.stop_and_watch_drain();
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_FALSE(server.wait_stopped(100ms));  // the request in hand holds it
  EXPECT_EQ(server.drained(), 0);
  server.on_io([&] {
    for (Response& res : pending) res.end("finished\n");
    pending.clear();
  });
  auto response = busy.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "finished\n");
  EXPECT_EQ(response->header("Connection"), "close");
  std::string rest;
  EXPECT_TRUE(busy.wait_closed(5s, &rest));
  EXPECT_EQ(rest, "");  // the pipelined request was not started
  EXPECT_TRUE(server.wait_stopped(10s));
  EXPECT_EQ(server.drained(), 1);
}

TEST(HttpStop, PartlyReceivedRequestIsFinished) {
  TestServer server(hello);
  Client client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHo"));
  ASSERT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.reads == 1; }));
  server.stop();
  ASSERT_TRUE(client.send("st: h\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello\n");
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(server.wait_stopped(10s));
}

TEST(HttpStop, NoNewConnectionsAfterStop) {
  TestServer server(hello);
  const std::uint16_t port = server.port();
  server.stop();
  ASSERT_TRUE(server.wait_stopped(10s));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(fd);
}

TEST(HttpStop, StreamingResponseFinishesThenCloses) {
  std::vector<Response> pending;
  TestServer server([&](Request&, Response& res) {
    res.write("first part, ");
    pending.push_back(res);
  });
  OnExit drop_pending([&] { server.on_io([&] { pending.clear(); }); });
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  ASSERT_TRUE(wait_for_stats(server, [](const Stats& s) { return s.requests == 1; }));
  server.stop();
  server.on_io([&] {
    for (Response& res : pending) res.end("last part");
    pending.clear();
  });
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "first part, last part");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(server.wait_stopped(10s));
}

}  // namespace
}  // namespace multinode::http::test

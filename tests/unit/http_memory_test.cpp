// Memory per idle connection (issue #9): a keep-alive connection between requests
// holds no input or output buffer (Stats::input_buffers and output_buffers count
// the connections that do), a connection with part of a request in hand holds its
// input buffer, and idle connections still serve their next request. Counts, not
// timings: each wait is bounded and only waits for the server to get there.
#include "http/connection.hpp"
#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace multinode::http::test {
namespace {

void hello(Request& req, Response& res) {
  res.set("Content-Type", "text/plain");
  std::string body = "hello ";
  body.append(req.target());
  body.push_back('\n');
  res.end(std::move(body));
}

// Waits (at most 5 s) until the server's stats satisfy done; returns the last ones.
template <typename Done>
Stats wait_for_stats(TestServer& server, Done done) {
  Stats stats = server.stats();
  for (int i = 0; i < 500 && !done(stats); ++i) {
    std::this_thread::sleep_for(10ms);
    stats = server.stats();
  }
  return stats;
}

TEST(HttpMemory, IdleKeepAliveConnectionsHoldNoBuffers) {
  TestServer server(hello);
  constexpr int connections = 64;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < connections; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    ASSERT_TRUE(clients.back()->send(get("/first", "User-Agent: test\r\nAccept: */*\r\n")));
  }
  for (auto& client : clients) {
    auto response = client->read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "hello /first\n");
  }
  Stats stats =
      wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 0 && s.output_buffers == 0; });
  EXPECT_EQ(stats.connections_open, static_cast<std::uint64_t>(connections));
  EXPECT_EQ(stats.input_buffers, 0u);
  EXPECT_EQ(stats.output_buffers, 0u);

  // Each still serves its next request, and lets go of the buffers again.
  for (auto& client : clients) ASSERT_TRUE(client->send(get("/second")));
  for (auto& client : clients) {
    auto response = client->read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "hello /second\n");
  }
  stats =
      wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 0 && s.output_buffers == 0; });
  EXPECT_EQ(stats.requests, 2u * connections);
  EXPECT_EQ(stats.input_buffers, 0u);
  EXPECT_EQ(stats.output_buffers, 0u);
}

TEST(HttpMemory, AConnectionWithPartOfARequestHoldsItsBuffer) {
  TestServer server(hello);
  Client idle(server.port());
  Client partial(server.port());
  ASSERT_TRUE(idle.send(get("/idle")));
  ASSERT_TRUE(idle.read_response());
  ASSERT_TRUE(partial.send("GET /partial HTTP/1.1\r\nHo"));
  Stats stats = wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 1 && s.reads >= 2; });
  EXPECT_EQ(stats.input_buffers, 1u);  // the partial one's, not the idle one's
  ASSERT_TRUE(partial.send("st: h\r\n\r\n"));
  auto response = partial.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello /partial\n");
  stats = wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 0; });
  EXPECT_EQ(stats.input_buffers, 0u);
}

TEST(HttpMemory, AnAsynchronousHandlerKeepsItsRequestUntilItAnswers) {
  // The request's views point into the input buffer: it is not given back while the
  // response is pending, even though every byte of the request has been parsed.
  std::shared_ptr<Response> pending;
  TestServer server([&pending](Request&, Response& res) { pending = std::make_shared<Response>(res); });
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/later")));
  Stats stats = wait_for_stats(server, [](const Stats& s) { return s.requests == 1; });
  EXPECT_EQ(stats.input_buffers, 1u);
  server.on_io([&] {
    pending->end("done\n");
    pending.reset();
  });
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "done\n");
  stats =
      wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 0 && s.output_buffers == 0; });
  EXPECT_EQ(stats.input_buffers, 0u);
  EXPECT_EQ(stats.output_buffers, 0u);
}

TEST(HttpMemory, PipelinedRequestsAreAllServed) {
  // Bytes buffered behind a request keep the buffer; once all are answered it goes.
  TestServer server(hello);
  Client client(server.port());
  std::string batch;
  std::vector<std::string> targets;
  for (int i = 0; i < 16; ++i) targets.push_back(std::string(1, '/').append(std::to_string(i)));
  for (const std::string& target : targets) batch += get(target);
  ASSERT_TRUE(client.send(batch));
  for (const std::string& target : targets) {
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, std::string("hello ").append(target).append("\n"));
  }
  const Stats stats = wait_for_stats(server, [](const Stats& s) { return s.input_buffers == 0; });
  EXPECT_EQ(stats.input_buffers, 0u);
}

// What an idle connection holds in its own object (docs/http.md, "Memory per
// connection"): a bound that fails when a member is added without a thought.
TEST(HttpMemory, ConnectionObjectStaysSmall) {
  EXPECT_LE(sizeof(detail::Connection), 900u);
}

}  // namespace
}  // namespace multinode::http::test

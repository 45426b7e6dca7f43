// Bad requests over a real socket: each is answered with its status and
// `Connection: close`, the connection is closed, nothing sent after it is
// answered, and the server goes on serving everyone else.
#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <string>

namespace multinode::http::test {
namespace {

struct BadRequest {
  const char* name;
  std::string bytes;
  int status;
};

Options small_limits() {
  Options options;
  options.max_header_bytes = 1024;
  options.max_header_count = 10;
  options.max_target_length = 100;
  options.max_body_bytes = 100;
  options.max_chunk_extension_bytes = 16;
  return options;
}

std::vector<BadRequest> bad_requests() {
  const std::string post = "POST / HTTP/1.1\r\nHost: h\r\n";
  std::string many_headers = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 10; ++i) many_headers += "X-" + std::to_string(i) + ": v\r\n";
  return {
      {"te-not-chunked-last", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
      {"te-gzip-only", post + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"te-chunked-twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"te-unsupported-coding", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"te-then-cl", post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
      {"cl-then-te", post + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"te-on-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n", 400},
      {"missing-host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"repeated-host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"host-list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400},
      {"host-space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"host-path", "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", 400},
      {"host-port", "GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", 400},
      {"host-userinfo", "GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", 400},
      {"not-a-request", std::string("\x16\x03\x01\x00\xf8\x01\x00\x00\xf4\x03\x03", 11), 400},
      {"repeated-content-length", post + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
      {"content-length-list", post + "Content-Length: 1, 1\r\n\r\nx", 400},
      {"space-in-name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", 400},
      {"control-in-value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400},
      {"non-ascii-target", "GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"bare-lf", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"chunk-size-overflow", post + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400},
      {"bad-chunk-size", post + "Transfer-Encoding: chunked\r\n\r\nxyz\r\n", 400},
      {"chunk-extension-too-long",
       post + "Transfer-Encoding: chunked\r\n\r\n1;" + std::string(40, 'e') + "\r\nx\r\n0\r\n\r\n", 400},
      {"body-too-large", post + "Content-Length: 101\r\n\r\n", 413},
      {"chunked-body-too-large",
       post + "Transfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'x') + "\r\n40\r\n" +
           std::string(64, 'x') + "\r\n0\r\n\r\n",
       413},
      {"target-too-long", "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414},
      {"request-line-too-long", "GET /" + std::string(1100, 'a'), 414},
      {"header-too-large", "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(1100, 'v') + "\r\n\r\n", 431},
      {"too-many-headers", many_headers + "\r\n", 431},
      {"http-2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"expectation", post + "Expect: something\r\nContent-Length: 0\r\n\r\n", 417},
  };
}

TEST(HttpErrors, EachBadRequestGetsItsStatusAndNothingAfterIt) {
  TestServer server([](Request&, Response& res) { res.end("served\n"); }, small_limits());
  const auto cases = bad_requests();
  for (const BadRequest& bad : cases) {
    SCOPED_TRACE(bad.name);
    Client client(server.port());
    // A smuggled request right behind: it must never be answered.
    ASSERT_TRUE(client.send(bad.bytes + get("/smuggled")));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, bad.status);
    EXPECT_EQ(response->header("Connection"), "close");
    std::string rest;
    EXPECT_TRUE(client.wait_closed(5s, &rest));
    EXPECT_EQ(rest, "");
  }
  // The process goes on serving.
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "served\n");
  const Stats stats = server.stats();
  EXPECT_EQ(stats.bad_requests, cases.size());
  EXPECT_EQ(stats.requests, 1u);
}

// A TLS ClientHello on the plain-text port: nothing in it ends a line, so waiting
// for the request line would hold the connection until header_timeout (an hour
// here). Its first byte cannot start a request: 400 and close at once.
TEST(HttpErrors, TlsClientHelloIsAnsweredAtOnce) {
  Options options;
  options.header_timeout = std::chrono::hours(1);
  TestServer server([](Request&, Response& res) { res.end("served\n"); }, options);
  Client client(server.port());
  std::string hello("\x16\x03\x01\x00\xf8\x01\x00\x00\xf4\x03\x03", 11);
  hello += std::string(32, '\x5a');  // the client random; no CR or LF anywhere
  ASSERT_TRUE(client.send(hello));
  auto response = client.read_response(false, 10s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.wait_closed(10s));
  EXPECT_EQ(server.stats().bad_requests, 1u);
}

// RFC 9110 2.5: HTTP/1.2 is served as HTTP/1.1 (the answer says HTTP/1.1).
TEST(HttpErrors, HigherMinorVersionIsServedAsHttp11) {
  TestServer server([](Request& req, Response& res) { res.end(std::to_string(req.version())); });
  Client client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.2\r\nHost: h\r\n\r\n" + get("/2")));
  for (int i = 0; i < 2; ++i) {
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->version, "HTTP/1.1");
    EXPECT_EQ(response->body, "11");
  }
}

TEST(HttpErrors, GoodRequestsBeforeABadOneAreAnswered) {
  TestServer server([](Request& req, Response& res) { res.end(std::string(req.target())); });
  Client client(server.port());
  ASSERT_TRUE(
      client.send(get("/1") + get("/2") + "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + get("/3")));
  auto first = client.read_response();
  auto second = client.read_response();
  auto third = client.read_response();
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->body, "/1");
  EXPECT_EQ(second->body, "/2");
  EXPECT_EQ(third->status, 400);
  std::string rest;
  EXPECT_TRUE(client.wait_closed(5s, &rest));
  EXPECT_EQ(rest, "");
}

TEST(HttpErrors, ErrorResponseSurvivesUnreadInput) {
  // The client keeps sending after a refused request: the server must still get
  // the 400 to it (lingering close) rather than reset the connection.
  TestServer server([](Request&, Response& res) { res.end("ok"); });
  Client client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" +
                          std::string(std::size_t{200} * 1024, 'x')));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(client.wait_closed());
}

}  // namespace
}  // namespace multinode::http::test

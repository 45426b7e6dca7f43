// The server in-process, over loopback: keep-alive, pipelining, chunked bodies
// both ways, HTTP/1.0, HEAD, 100-continue, responses completed later, streaming.
#include "accepted_fd.hpp"
#include "http_test_client.hpp"

#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>

#include <atomic>
#include <memory>
#include <regex>
#include <string>

namespace multinode::http::test {
namespace {

// Answers "<method> <target> <body size>" and echoes the body after a newline.
void echo(Request& req, Response& res) {
  res.set("Content-Type", "text/plain");
  res.end(std::string(req.method()) + " " + std::string(req.target()) + " " +
          std::to_string(req.body().size()) + "\n" + std::string(req.body()));
}

TEST(HttpServer, AnswersAndKeepsTheConnectionAlive) {
  TestServer server(echo);
  Client client(server.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.send(get("/n" + std::to_string(i))));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->version, "HTTP/1.1");
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "GET /n" + std::to_string(i) + " 0\n");
    EXPECT_EQ(response->header("Content-Length"), std::to_string(response->body.size()));
    EXPECT_EQ(response->header("Content-Type"), "text/plain");
    EXPECT_FALSE(response->has_header("Connection"));
    EXPECT_TRUE(std::regex_match(response->header("Date"),
                                 std::regex("(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
                                            "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
                                            "[0-9]{2}:[0-9]{2}:[0-9]{2} GMT")))
        << response->header("Date");
  }
  EXPECT_EQ(server.stats().connections_accepted, 1u);
  EXPECT_EQ(server.stats().requests, 3u);
}

TEST(HttpServer, PipelinedResponsesComeInOrderInOneWrite) {
  TestServer server(echo);
  Client client(server.port());
  // A warm-up exchange, so that the counters below only see the batch.
  ASSERT_TRUE(client.send(get("/warm-up")));
  ASSERT_TRUE(client.read_response());
  const Stats before = server.stats();
  std::string batch;
  for (int i = 0; i < 16; ++i) batch += get("/p" + std::to_string(i));
  ASSERT_TRUE(client.send(batch));  // one send: loopback queues it whole
  for (int i = 0; i < 16; ++i) {
    auto response = client.read_response();
    ASSERT_TRUE(response) << i;
    EXPECT_EQ(response->body, "GET /p" + std::to_string(i) + " 0\n");
  }
  const Stats after = server.stats();
  EXPECT_EQ(after.requests - before.requests, 16u);
  EXPECT_EQ(after.reads - before.reads, 1u);
  EXPECT_EQ(after.writes - before.writes, 1u);
}

TEST(HttpServer, PipelinedRequestsWaitForAnEarlierAsynchronousResponse) {
  std::vector<std::shared_ptr<boost::asio::steady_timer>> timers;
  TestServer* server_pointer = nullptr;
  TestServer server([&](Request& req, Response& res) {
    if (req.target() == "/slow") {
      auto timer = std::make_shared<boost::asio::steady_timer>(server_pointer->io(), 50ms);
      timers.push_back(timer);
      timer->async_wait([res](const boost::system::error_code&) mutable { res.end("slow\n"); });
      return;
    }
    res.end(std::string(req.target()) + "\n");
  });
  server_pointer = &server;
  OnExit drop_timers([&] { server.on_io([&] { timers.clear(); }); });
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/slow") + get("/fast") + get("/slow") + get("/last")));
  for (const char* expected : {"slow\n", "/fast\n", "slow\n", "/last\n"}) {
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, expected);
  }
}

TEST(HttpServer, ContentLengthAndChunkedRequestBodies) {
  TestServer server([](Request& req, Response& res) {
    std::string trailers;
    for (const Field& f : req.trailers()) trailers += std::string(f.name) + "=" + std::string(f.value) + ";";
    res.end(std::string(req.body()) + "|" + trailers);
  });
  Client client(server.port());
  ASSERT_TRUE(client.send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello world|");
  ASSERT_TRUE(
      client.send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n5\r\nhello\r\n1;ext=x\r\n \r\n5\r\nworld\r\n"
                  "0\r\nChecksum: abc\r\n\r\n"));
  response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello world|Checksum=abc;");
}

TEST(HttpServer, ChunkedResponseWithTrailers) {
  TestServer server([](Request&, Response& res) {
    res.set("Trailer", "Checksum");
    EXPECT_TRUE(res.write("hello "));
    EXPECT_TRUE(res.write(""));  // an empty piece must not end the body
    EXPECT_TRUE(res.write("chunked "));
    res.trailer("Checksum", "1234");
    res.end("world");
    EXPECT_TRUE(res.ended());
    EXPECT_FALSE(res.write("too late"));
  });
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->chunked);
  EXPECT_FALSE(response->has_header("Content-Length"));
  EXPECT_EQ(response->body, "hello chunked world");
  ASSERT_EQ(response->trailers.size(), 1u);
  EXPECT_EQ(response->trailers[0], (std::pair<std::string, std::string>{"Checksum", "1234"}));
  // The connection is still usable.
  ASSERT_TRUE(client.send(get()));
  EXPECT_TRUE(client.read_response());
}

TEST(HttpServer, Http10GetsCloseOrKeepAliveAndNoChunks) {
  TestServer server([](Request& req, Response& res) {
    if (req.target() == "/stream") {
      res.write("streamed ");
      res.end("body");
      return;
    }
    res.end("ten");
  });
  {
    Client client(server.port());
    ASSERT_TRUE(client.send("GET / HTTP/1.0\r\n\r\n"));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "ten");
    EXPECT_EQ(response->header("Connection"), "close");
    EXPECT_TRUE(client.wait_closed());
  }
  {
    Client client(server.port());
    ASSERT_TRUE(client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("Connection"), "keep-alive");
    ASSERT_TRUE(client.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    response = client.read_response();  // no length, no chunks: the body ends with the connection
    ASSERT_TRUE(response);
    EXPECT_FALSE(response->chunked);
    EXPECT_EQ(response->body, "streamed body");
    EXPECT_EQ(response->header("Connection"), "close");
    EXPECT_TRUE(client.closed());
  }
}

TEST(HttpServer, HeadGetsTheHeadersWithoutTheBody) {
  TestServer server([](Request& req, Response& res) {
    if (req.target() == "/stream") {
      res.write("abc");
      res.end();
      return;
    }
    res.end("twelve bytes");
  });
  Client client(server.port());
  ASSERT_TRUE(client.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto response = client.read_response(/*head_request=*/true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("Content-Length"), "12");
  ASSERT_TRUE(client.send("HEAD /stream HTTP/1.1\r\nHost: h\r\n\r\n"));
  response = client.read_response(true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("Transfer-Encoding"), "chunked");
  // Had a body byte leaked, this response would not parse.
  ASSERT_TRUE(client.send(get()));
  response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "twelve bytes");
}

TEST(HttpServer, NoBodyFor204And304) {
  TestServer server([](Request& req, Response& res) {
    res.status(req.target() == "/204" ? 204 : 304);
    res.end("ignored");
  });
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/204")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 204);
  EXPECT_FALSE(response->has_header("Content-Length"));
  ASSERT_TRUE(client.send(get("/304")));
  response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 304);
  EXPECT_TRUE(client.buffered().empty());
}

TEST(HttpServer, ExpectContinue) {
  TestServer server(echo);
  Client client(server.port());
  ASSERT_TRUE(
      client.send("PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send("data"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "PUT /up 4\ndata");
}

TEST(HttpServer, StatusAndHeadersFromTheHandler) {
  TestServer server([](Request&, Response& res) {
    res.status(201).set("Location", "/things/1").set("X-Multi", "a").set("X-Multi", "b");
    res.set("Date", "Thu, 01 Jan 1970 00:00:00 GMT");
    res.end("created");
  });
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->header("Location"), "/things/1");
  int multi = 0;
  int dates = 0;
  for (const auto& [name, value] : response->headers) {
    multi += name == "X-Multi";
    dates += name == "Date";
  }
  EXPECT_EQ(multi, 2);
  EXPECT_EQ(dates, 1);  // the handler's Date replaced the server's
  EXPECT_EQ(response->header("Date"), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(HttpServer, HandlerAskingToCloseClosesAfterTheResponse) {
  TestServer server([](Request&, Response& res) {
    res.set("Connection", "close");
    res.end("bye");
  });
  Client client(server.port());
  ASSERT_TRUE(client.send(get() + get("/never")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("Connection"), "close");
  std::string rest;
  EXPECT_TRUE(client.wait_closed(5s, &rest));
  EXPECT_EQ(rest, "");  // the pipelined request was not answered
}

TEST(HttpServer, ClientConnectionCloseIsHonoured) {
  TestServer server(echo);
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/", "Connection: close\r\n") + get("/never")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("Connection"), "close");
  std::string rest;
  EXPECT_TRUE(client.wait_closed(5s, &rest));
  EXPECT_EQ(rest, "");
}

TEST(HttpServer, HalfClosedClientGetsEveryAnswer) {
  TestServer server(echo);
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/1") + get("/2")));
  client.shutdown_write();
  auto first = client.read_response();
  auto second = client.read_response();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, "GET /1 0\n");
  EXPECT_FALSE(first->has_header("Connection"));
  // Whether the second says Connection: close depends on whether the end of the
  // stream was read before it was answered; either way the server closes after it.
  EXPECT_EQ(second->body, "GET /2 0\n");
  EXPECT_TRUE(client.wait_closed());
}

TEST(HttpServer, LargeBodiesBothWays) {
  TestServer server([](Request& req, Response& res) {
    std::string body(req.body());
    std::reverse(body.begin(), body.end());
    res.end(std::move(body));  // handed over, not copied
  });
  std::string payload(3 * 1024 * 1024 / 4, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  Client client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(payload.size()) +
                          "\r\n\r\n" + payload));
  auto response = client.read_response(false, 10s);
  ASSERT_TRUE(response);
  std::reverse(payload.begin(), payload.end());
  EXPECT_TRUE(response->body == payload);
}

TEST(HttpServer, StreamedResponseWithBackpressure) {
  Options options;
  options.write_high_water = std::size_t{64} * 1024;
  const std::string piece(std::size_t{16} * 1024, 'x');
  constexpr int pieces = 512;  // 8 MiB, far more than socket buffers hold
  int drains = 0;
  TestServer server(
      [&](Request&, Response& res) {
        auto sent = std::make_shared<int>(0);
        auto pump = std::make_shared<std::function<void()>>();
        *pump = [res, sent, pump, &piece, &drains]() mutable {
          while (*sent < pieces) {
            ++*sent;
            if (!res.write(piece)) {
              ++drains;
              res.on_drain(*pump);
              return;
            }
          }
          res.end();
          *pump = nullptr;  // break the cycle
        };
        (*pump)();
      },
      options);
  Client client(server.port(), 16 * 1024);
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response(false, 20s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body.size(), piece.size() * pieces);
  int waited = 0;
  server.on_io([&] { waited = drains; });
  EXPECT_GT(waited, 0);  // write() did push back
}

TEST(HttpServer, StreamedRequestBody) {
  Options options;
  options.stream_body = true;
  options.max_body_bytes = std::uint64_t{64} * 1024 * 1024;
  TestServer server(
      [](Request& req, Response& res) {
        auto received = std::make_shared<std::size_t>(0);
        auto sum = std::make_shared<unsigned>(0);
        req.on_data([received, sum](std::string_view data) {
          *received += data.size();
          for (char c : data) *sum += static_cast<unsigned char>(c);
        });
        req.on_end([res, received, sum]() mutable {
          res.end(std::to_string(*received) + " " + std::to_string(*sum));
        });
      },
      options);
  Client client(server.port());
  // 8 MiB chunked: far more than the buffer ever holds in stream mode.
  std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(client.send(head));
  const std::string piece(std::size_t{32} * 1024, '\x03');
  for (int i = 0; i < 256; ++i) ASSERT_TRUE(client.send("8000\r\n" + piece + "\r\n"));
  ASSERT_TRUE(client.send("0\r\n\r\n"));
  auto response = client.read_response(false, 20s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body,
            std::to_string(256 * piece.size()) + " " + std::to_string(256u * piece.size() * 3u));
  ASSERT_TRUE(client.send(get()));
  EXPECT_TRUE(client.read_response());
}

TEST(HttpServer, StreamingHandlerMayAnswerBeforeTheBodyEnds) {
  Options options;
  options.stream_body = true;
  TestServer server([](Request&, Response& res) { res.status(202).end("early"); }, options);
  Client client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 202);
  // The rest of the body is read and dropped; the connection goes on.
  ASSERT_TRUE(client.send("56789" + get("/next")));
  response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "early");
}

TEST(HttpServer, HandlerThatThrowsOrDropsItsResponseGets500) {
  TestServer server([](Request& req, Response& res) {
    if (req.target() == "/throw") throw std::runtime_error("boom");
    if (req.target() == "/drop") return;  // neither ended nor kept
    res.end("fine");
  });
  for (const char* target : {"/throw", "/drop"}) {
    Client client(server.port());
    ASSERT_TRUE(client.send(get(target) + get("/never")));
    auto response = client.read_response();
    ASSERT_TRUE(response) << target;
    EXPECT_EQ(response->status, 500);
    EXPECT_EQ(response->header("Connection"), "close");
    std::string rest;
    EXPECT_TRUE(client.wait_closed(5s, &rest));
    EXPECT_EQ(rest, "");
  }
  Client client(server.port());
  ASSERT_TRUE(client.send(get("/ok")));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "fine");
  EXPECT_EQ(server.stats().handler_errors, 2u);
}

TEST(HttpServer, ResponseRefusesWhatWouldBreakFraming) {
  std::vector<std::string> refused;
  TestServer server([&](Request&, Response& res) {
    auto attempt = [&](const char* what, auto f) {
      try {
        f();
      } catch (const std::invalid_argument&) {
        refused.push_back(what);
      }
    };
    attempt("name", [&] { res.set("Bad Name", "x"); });
    attempt("crlf", [&] { res.set("X", "a\r\nInjected: yes"); });
    attempt("length", [&] { res.set("Content-Length", "5"); });
    attempt("coding", [&] { res.set("transfer-encoding", "chunked"); });
    attempt("status", [&] { res.status(101); });
    res.end("ok");
  });
  Client client(server.port());
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_FALSE(response->has_header("Injected"));
  server.on_io([] {});
  EXPECT_EQ(refused, (std::vector<std::string>{"name", "crlf", "length", "coding", "status"}));
}

TEST(HttpServer, ManyClientsAtOnce) {
  TestServer server(echo);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(std::make_unique<Client>(server.port()));
  for (int round = 0; round < 5; ++round) {
    for (auto& client : clients) ASSERT_TRUE(client->send(get("/r" + std::to_string(round))));
    for (auto& client : clients) {
      auto response = client->read_response();
      ASSERT_TRUE(response);
      EXPECT_EQ(response->body, "GET /r" + std::to_string(round) + " 0\n");
    }
  }
  EXPECT_EQ(server.stats().requests, 250u);
  EXPECT_EQ(server.stats().connections_open, 50u);
}

// A handler that runs fork()+exec() or system() must not leak client connections
// into the child: every accepted socket is close-on-exec (Asio's async_accept in
// Boost 1.81 calls plain accept(), which is not).
TEST(HttpServer, ServedConnectionIsCloseOnExecAndNonBlocking) {
  // Written on one thread, read on the other: atomics.
  std::atomic<std::uint16_t> client_port{0};
  std::atomic<int> fd_flags{-1};
  std::atomic<int> status_flags{-1};
  TestServer server([&](Request&, Response& res) {
    const int fd = multinode::test::fd_connected_to(client_port);
    if (fd >= 0) {
      fd_flags = ::fcntl(fd, F_GETFD);
      status_flags = ::fcntl(fd, F_GETFL);
    }
    res.end(fd >= 0 ? "found\n" : "not found\n");
  });
  Client client(server.port());
  client_port = multinode::test::local_port_of(client.fd());
  ASSERT_NE(client_port, 0);
  ASSERT_TRUE(client.send(get()));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  ASSERT_EQ(response->body, "found\n");
  EXPECT_TRUE(fd_flags & FD_CLOEXEC) << "the server's end of the connection would leak across exec";
  EXPECT_TRUE(status_flags & O_NONBLOCK);
}

}  // namespace
}  // namespace multinode::http::test

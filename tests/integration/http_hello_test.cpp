// The hello example as a user runs it: two processes behind one port, raw bytes
// over loopback. Pipelining, chunked bodies, keep-alive and close, every default
// limit, every request-smuggling form, the slowloris cut-off, graceful stop.
#include "process.hpp"

#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <csignal>
#include <regex>
#include <set>
#include <string>

namespace multinode::test {
namespace {

using http::test::Client;
using http::test::ClientResponse;
using http::test::get;

const std::regex greeting("Hello from node ([0-9]+) \\(pid ([0-9]+)\\)\n");

// hello on a free port with two nodes, ready once both processes serve.
struct Hello {
  Hello() : port(free_port()), process(start()) {
    const int fd = wait_for_connect(port, 10s);
    EXPECT_GE(fd, 0) << process.error_output();
    if (fd >= 0) ::close(fd);
    EXPECT_TRUE(process.wait_for_output("is ready", 10s, /*in_stderr=*/true)) << process.error_output();
  }
  ChildProcess start() const {
    return ChildProcess::start(
        {example_path("hello"), "--port", std::to_string(port), "--nodes", "2", "--host", "127.0.0.1"});
  }
  std::uint16_t port;
  ChildProcess process;
};

void expect_hello(const std::optional<ClientResponse>& response) {
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(std::regex_match(response->body, greeting)) << response->body;
}

TEST(HttpHello, AnswersEveryMethodAndPathFromBothProcesses) {
  Hello hello;
  std::set<std::string> pids;
  for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"}) {
    Client client(hello.port);
    ASSERT_TRUE(client.send(std::string(method) +
                            " /some/path?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"));
    auto response = client.read_response();
    expect_hello(response);
    std::smatch match;
    if (response && std::regex_match(response->body, match, greeting)) pids.insert(match[2]);
  }
  // Each answer names a process of this server: the master or its worker.
  const std::vector<pid_t> children = child_pids(hello.process.pid());
  for (const std::string& pid : pids) {
    const pid_t p = std::stoi(pid);
    EXPECT_TRUE(p == hello.process.pid() || std::find(children.begin(), children.end(), p) != children.end())
        << p;
  }
}

TEST(HttpHello, KeepAlivePipeliningAndClose) {
  Hello hello;
  Client client(hello.port);
  std::string batch;
  for (int i = 0; i < 16; ++i) {
    std::string target = "/";
    target += std::to_string(i);
    batch += get(target);
  }
  ASSERT_TRUE(client.send(batch));
  std::string first_body;
  for (int i = 0; i < 16; ++i) {
    auto response = client.read_response();
    expect_hello(response);
    if (!response) return;
    if (i == 0) first_body = response->body;
    EXPECT_EQ(response->body, first_body);  // one connection, one process
  }
  ASSERT_TRUE(client.send(get("/last", "Connection: close\r\n")));
  auto response = client.read_response();
  expect_hello(response);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.wait_closed());

  Client old(hello.port);
  ASSERT_TRUE(old.send("GET / HTTP/1.0\r\n\r\n"));
  expect_hello(old.read_response());
  EXPECT_TRUE(old.wait_closed());
}

TEST(HttpHello, ChunkedAndLargeBodiesAreReadWhole) {
  Hello hello;
  Client client(hello.port);
  ASSERT_TRUE(
      client.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n"));
  expect_hello(client.read_response());
  const std::string body(std::size_t{1024} * 1024, 'b');  // exactly the default limit
  ASSERT_TRUE(client.send("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body));
  expect_hello(client.read_response(false, 10s));
  ASSERT_TRUE(client.send("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send("abc"));
  expect_hello(client.read_response());
}

struct Refused {
  const char* name;
  std::string bytes;
  int status;
};

TEST(HttpHello, DefaultLimitsAndSmugglingFormsAreRefused) {
  Hello hello;
  const std::string post = "POST / HTTP/1.1\r\nHost: h\r\n";
  std::string many_fields = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 100; ++i) {
    many_fields += "X-";
    many_fields += std::to_string(i);
    many_fields += ": v\r\n";
  }
  const std::vector<Refused> cases = {
      // Request smuggling: each form, with a second request behind it that must never be answered.
      {"te-last-not-chunked", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
      {"te-not-chunked", post + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"te-unsupported", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"te-then-cl", post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
      {"cl-then-te", post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"te-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400},
      {"no-host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"two-lengths", post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400},
      {"bad-name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", 400},
      {"bad-value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400},
      {"bad-target", "GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"chunk-overflow", post + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n", 400},
      {"no-crlf-after-chunk", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400},
      // Every default limit.
      {"header-bytes",
       "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(std::size_t{16} * 1024, 'v') + "\r\n\r\n", 431},
      {"header-count", many_fields + "\r\n", 431},
      {"target-length", "GET /" + std::string(std::size_t{8} * 1024, 't') + " HTTP/1.1\r\nHost: h\r\n\r\n",
       414},
      {"body-bytes", post + "Content-Length: 1048577\r\n\r\n", 413},
      {"chunk-extension",
       post + "Transfer-Encoding: chunked\r\n\r\n1;e=" + std::string(300, 'e') + "\r\nx\r\n0\r\n\r\n", 400},
      {"version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
  };
  for (const Refused& refused : cases) {
    SCOPED_TRACE(refused.name);
    Client client(hello.port);
    ASSERT_TRUE(client.send(refused.bytes + get("/second")));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, refused.status);
    EXPECT_EQ(response->header("Connection"), "close");
    std::string rest;
    EXPECT_TRUE(client.wait_closed(5s, &rest));
    EXPECT_EQ(rest, "") << "a second response came";
  }
  // Both processes are still there and serving.
  Client client(hello.port);
  ASSERT_TRUE(client.send(get()));
  expect_hello(client.read_response());
  EXPECT_EQ(child_pids(hello.process.pid()).size(), 1u);
}

TEST(HttpHello, SlowlorisIsCutOffAtTheDefaultHeaderTimeout) {
  Hello hello;
  Client slow(hello.port);
  const std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + std::string(4000, 's') + "\r\n\r\n";
  // One byte every 100 ms: the whole head would take 400 s, the default header timeout is 10 s.
  bool answered = false;
  for (std::size_t sent = 0; sent < head.size() && sent < 300; ++sent) {
    if (!slow.send(head.substr(sent, 1))) break;
    pollfd p{slow.fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      answered = true;
      break;
    }
  }
  ASSERT_TRUE(answered) << "still connected after 30 s of trickling";
  auto response = slow.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_TRUE(slow.wait_closed());
  // Everyone else was served all along.
  Client client(hello.port);
  ASSERT_TRUE(client.send(get()));
  expect_hello(client.read_response());
}

TEST(HttpHello, GracefulStopFinishesRequestsInHand) {
  Hello hello;
  Client idle(hello.port);
  ASSERT_TRUE(idle.send(get()));
  expect_hello(idle.read_response());
  Client busy(hello.port);
  ASSERT_TRUE(busy.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234"));
  // Let the server read that part before the stop.
  ASSERT_TRUE(idle.send(get()));
  expect_hello(idle.read_response());

  hello.process.signal(SIGTERM);
  EXPECT_TRUE(idle.wait_closed());  // idle keep-alive connections close at once
  ASSERT_TRUE(busy.send("56789" + get("/after")));
  auto response = busy.read_response();
  expect_hello(response);
  EXPECT_EQ(response->header("Connection"), "close");
  std::string rest;
  EXPECT_TRUE(busy.wait_closed(5s, &rest));
  EXPECT_EQ(rest, "");
  const auto status = hello.process.wait(15s);
  ASSERT_TRUE(status) << "did not exit";
  EXPECT_TRUE(WIFEXITED(*status)) << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << hello.process.error_output();
}

}  // namespace
}  // namespace multinode::test

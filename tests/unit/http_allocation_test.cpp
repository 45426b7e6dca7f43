// No allocation per request: after a connection has warmed up, the server's thread
// serves keep-alive and pipelined requests (a handler like hello's: one header and
// a short body) without calling operator new. This program replaces the global
// operator new to count the calls made on the server's thread.
// GCC sees the replacement operator delete calling free() on what new-expressions
// allocated and cannot tell that the replacement operator new used malloc().
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "http_test_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> counting{false};
std::atomic<std::uint64_t> allocations{0};
thread_local bool on_server_thread = false;

}  // namespace

void* operator new(std::size_t size) {
  if (on_server_thread && counting.load(std::memory_order_relaxed))
    allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return operator new(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace multinode::http::test {
namespace {

void hello(Request&, Response& res) {
  res.set("Content-Type", "text/plain");
  res.end("Hello from node 0 (pid 1)\n");
}

std::uint64_t count_allocations(TestServer& server, Client& client, const std::string& batch,
                                int requests_per_batch, int batches) {
  server.on_io([] {
    on_server_thread = true;
    allocations = 0;
    counting = true;
  });
  for (int b = 0; b < batches; ++b) {
    EXPECT_TRUE(client.send(batch));
    for (int i = 0; i < requests_per_batch; ++i) EXPECT_TRUE(client.read_response());
  }
  std::uint64_t counted = 0;
  server.on_io([&] {
    counting = false;
    counted = allocations;
  });
  return counted;
}

TEST(HttpAllocation, KeepAliveRequestsAllocateNothing) {
  TestServer server(hello);
  Client client(server.port());
  const std::string request = get("/", "User-Agent: test\r\nAccept: */*\r\n");
  for (int i = 0; i < 50; ++i) {  // warm up: buffers and caches reach their size
    ASSERT_TRUE(client.send(request));
    ASSERT_TRUE(client.read_response());
  }
  EXPECT_EQ(count_allocations(server, client, request, 1, 500), 0u);
}

TEST(HttpAllocation, PipelinedRequestsAllocateNothing) {
  TestServer server(hello);
  Client client(server.port());
  std::string batch;
  for (int i = 0; i < 16; ++i) batch += get("/pipelined");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client.send(batch));
    for (int r = 0; r < 16; ++r) ASSERT_TRUE(client.read_response());
  }
  EXPECT_EQ(count_allocations(server, client, batch, 16, 100), 0u);
}

TEST(HttpAllocation, RequestBodiesAllocateNothing) {
  TestServer server([](Request& req, Response& res) { res.end(req.body()); });
  Client client(server.port());
  const std::string request =
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: "
      "v\r\n\r\n";
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client.send(request));
    ASSERT_TRUE(client.read_response());
    ASSERT_TRUE(client.read_response());
  }
  EXPECT_EQ(count_allocations(server, client, request, 2, 200), 0u);
}

// The counter does see the server's allocations: a handler that builds a string
// too long for the small-string buffer allocates once per request.
TEST(HttpAllocation, TheCounterSeesAHandlersAllocations) {
  TestServer server([](Request&, Response& res) { res.end(std::string(100, 'x')); });
  Client client(server.port());
  const std::string request = get();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.send(request));
    ASSERT_TRUE(client.read_response());
  }
  EXPECT_GE(count_allocations(server, client, request, 1, 100), 100u);
}

}  // namespace
}  // namespace multinode::http::test

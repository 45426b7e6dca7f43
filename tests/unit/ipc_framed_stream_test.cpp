// FramedStream over real socketpairs: every kind of message intact and in
// order (also larger than the socket buffer), backpressure, close frames, bad
// frames closing only their own stream, a peer process going away, and the
// receive path not allocating per message.
#include "ipc_test_util.hpp"

#include "ipc/frame_codec.hpp"

#include <multinode/error.hpp>
#include <multinode/frame.hpp>

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

// Counts every allocation in this program, to show that receiving does not
// allocate per message. The replacements pair new with malloc and delete with
// free, which GCC cannot see across the inlining it does.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<long> allocations{0};
}
void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
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

namespace multinode::test {
namespace {

using namespace std::string_literals;

std::pair<FramedStream, FramedStream> framed_pair(boost::asio::io_context& io,
                                                  const FrameOptions& options = {}) {
  auto [a, b] = stream_pair(io);
  return {frame_stream(a, options), frame_stream(b, options)};
}

// A deterministic sequence of messages of all three kinds; some larger than a socket buffer.
Message nth_message(int i) {
  switch (i % 3) {
    case 0:
      return Message::text("text " + std::to_string(i) + " \xc3\xa9\xe2\x82\xac");
    case 1: {
      std::size_t size =
          i % 50 == 1 ? 3 * 1024 * 1024 + static_cast<std::size_t>(i) : static_cast<std::size_t>(i % 200);
      return Message::binary(random_bytes(size, static_cast<unsigned>(i)));
    }
    default: {
      boost::json::object object{{"i", i}, {"nested", {{"list", {1, 2, 3}}, {"flag", i % 2 == 0}}}};
      if (i % 50 == 2) object["big"] = std::string(1024 * 1024, 'j');
      return Message::json(std::move(object));
    }
  }
}

::testing::AssertionResult same(const Message& got, const Message& expected) {
  if (got.kind() != expected.kind()) return ::testing::AssertionFailure() << "kind differs";
  if (got.is_json()) {
    if (got.json_value() != expected.json_value()) {
      return ::testing::AssertionFailure() << boost::json::serialize(got.json_value());
    }
  } else if (got.bytes() != expected.bytes()) {
    return ::testing::AssertionFailure() << "payload of " << got.bytes().size() << " bytes differs";
  }
  return ::testing::AssertionSuccess();
}

TEST(FramedStream, EveryKindArrivesIntactAndInOrderBothWays) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  constexpr int count = 600;
  int at_a = 0, at_b = 0;
  a.on_message([&](const Message& m) { EXPECT_TRUE(same(m, nth_message(at_a++))) << at_a - 1; });
  b.on_message([&](const Message& m) { EXPECT_TRUE(same(m, nth_message(at_b++))) << at_b - 1; });
  for (int i = 0; i < count; ++i) {
    a.send(nth_message(i));
    b.send(nth_message(i));
  }
  ASSERT_TRUE(run_until(io, [&] { return at_a == count && at_b == count; }));
  EXPECT_EQ(a.buffered_amount(), 0u);
}

TEST(FramedStream, ConvenienceSendsAndImplicitMessages) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  std::vector<Message> got;
  b.on_message([&](const Message& m) { got.push_back(m); });
  a.send("literal");
  a.send(std::string("string"));
  a.send(boost::json::object{{"k", 1}});
  a.send(boost::json::array{1, "two"});
  a.send_text("text");
  a.send_binary("\0\1"s);
  a.send_json(boost::json::value(nullptr));
  a.send(Message::binary_view("view"));
  ASSERT_TRUE(run_until(io, [&] { return got.size() == 8; }));
  EXPECT_EQ(got[0].bytes(), "literal");
  EXPECT_EQ(got[1].bytes(), "string");
  EXPECT_EQ(boost::json::serialize(got[2].json_value()), R"({"k":1})");
  EXPECT_EQ(boost::json::serialize(got[3].json_value()), R"([1,"two"])");
  EXPECT_TRUE(got[4].is_text());
  EXPECT_TRUE(got[5].is_binary());
  EXPECT_EQ(got[5].bytes(), "\0\1"s);
  EXPECT_TRUE(got[6].json_value().is_null());
  EXPECT_EQ(got[7].bytes(), "view");
}

TEST(FramedStream, FrameStreamIsIdempotent) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  FrameOptions options;
  options.max_frame_size = 1000;
  FramedStream first = frame_stream(a, options);
  FramedStream second = frame_stream(a);  // the first call's options hold
  EXPECT_EQ(second.options().max_frame_size, 1000u);
  EXPECT_EQ(first.peer_id(), 2u);
  int seen = 0;
  frame_stream(b).on_message([&](const Message&) { ++seen; });
  first.send("one");
  second.send("two");
  ASSERT_TRUE(run_until(io, [&] { return seen == 2; }));
}

TEST(FramedStream, BackpressureNeverDropsOrReorders) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  a.stream().set_high_water_mark(32 * 1024);
  constexpr int count = 200000;
  int next = 0, refusals = 0, drains = 0;
  std::function<void()> pump = [&] {
    while (next < count) {
      std::string payload = std::to_string(next) + std::string(static_cast<std::size_t>(next % 100), '.');
      ++next;
      if (!a.send_binary(payload)) {
        ++refusals;
        EXPECT_GE(a.buffered_amount(), 32u * 1024);
        return;
      }
    }
  };
  a.on_drain([&] {
    ++drains;
    pump();
  });
  pump();
  int received = 0;
  b.on_message([&](const Message& m) {
    std::string expected =
        std::to_string(received) + std::string(static_cast<std::size_t>(received % 100), '.');
    ASSERT_EQ(m.bytes(), expected);
    ++received;
  });
  ASSERT_TRUE(run_until(io, [&] { return received == count; }));
  EXPECT_GT(refusals, 0);
  EXPECT_EQ(drains, refusals);
}

TEST(FramedStream, CloseDeliversWhatWasSentThenTellsBothSides) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  std::optional<std::error_code> a_closed, b_closed;
  a.on_close([&](std::error_code code) { a_closed = code; });
  b.on_close([&](std::error_code code) { b_closed = code; });
  int received = 0;
  b.on_message([&](const Message& m) { EXPECT_EQ(m.bytes(), std::to_string(received++)); });
  for (int i = 0; i < 1000; ++i) a.send(std::to_string(i));
  a.close();
  EXPECT_FALSE(a.is_open());
  EXPECT_FALSE(a.send("refused after close"));
  ASSERT_TRUE(run_until(io, [&] { return a_closed && b_closed; }));
  EXPECT_EQ(received, 1000);
  EXPECT_EQ(*a_closed, make_error_code(errc::stream_closed));
  EXPECT_EQ(*b_closed, make_error_code(errc::peer_closed));
  EXPECT_FALSE(b.is_open());
}

TEST(FramedStream, SendRefusesWhatThePeerWouldReject) {
  boost::asio::io_context io(1);
  FrameOptions options;
  options.max_frame_size = 100;
  auto [a, b] = framed_pair(io, options);
  std::vector<Message> got;
  b.on_message([&](const Message& m) { got.push_back(m); });
  EXPECT_THROW(a.send_binary(std::string(101, 'x')), std::system_error);
  std::error_code error;
  EXPECT_FALSE(a.send_text("bad \xff text", error));
  EXPECT_EQ(error, make_error_code(errc::invalid_utf8));
  EXPECT_FALSE(a.send_json(boost::json::string("\xc0\xaf"), error));
  EXPECT_EQ(error, make_error_code(errc::invalid_utf8));
  EXPECT_FALSE(a.send_json(boost::json::string(std::string(120, 'j')), error));
  EXPECT_EQ(error, make_error_code(errc::frame_too_large));
  EXPECT_EQ(a.buffered_amount(), 0u) << "nothing of a refused message is queued";
  EXPECT_TRUE(a.send_binary(std::string(100, 'x')));
  EXPECT_TRUE(a.send("still fine"));
  ASSERT_TRUE(run_until(io, [&] { return got.size() == 2; }));
  EXPECT_EQ(got[1].bytes(), "still fine");
  EXPECT_TRUE(b.is_open());
}

TEST(FramedStream, MessagesCopiedInTheHandlerOutliveIt) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  std::vector<Message> kept_messages;
  std::vector<boost::json::value> kept_values;
  b.on_message([&](const Message& m) {
    kept_messages.push_back(m);
    if (m.is_json()) kept_values.push_back(m.json_value());
  });
  for (int i = 0; i < 300; ++i) a.send(nth_message(i));
  ASSERT_TRUE(run_until(io, [&] { return kept_messages.size() == 300; }));
  int json = 0;
  for (int i = 0; i < 300; ++i) {
    EXPECT_TRUE(same(kept_messages[static_cast<std::size_t>(i)], nth_message(i))) << i;
    if (i % 3 == 2) {
      EXPECT_EQ(kept_values[static_cast<std::size_t>(json++)], nth_message(i).json_value()) << i;
    }
  }
}

// What a raw peer writes, and what the framed receiver must say about it.
struct BadInput {
  const char* name;
  std::string bytes;
  errc error;
};

std::string header(std::uint8_t type, std::uint32_t length, std::uint8_t reserved = 0) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(type);
  h[1] = static_cast<char>(reserved);
  for (int i = 0; i < 4; ++i) h[static_cast<std::size_t>(4 + i)] = static_cast<char>(length >> (8 * i));
  return h;
}

class BadFrameClosesOnlyItsStream : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadFrameClosesOnlyItsStream, OtherStreamsKeepWorking) {
  const BadInput& bad = GetParam();
  boost::asio::io_context io(1);
  FrameOptions options;
  options.max_frame_size = 64 * 1024;
  options.max_json_depth = 16;
  auto [sender, victim] = framed_pair(io, options);
  auto [healthy_a, healthy_b] = framed_pair(io, options);

  std::vector<std::string> victim_got;
  std::optional<std::error_code> victim_closed, sender_closed, healthy_closed;
  victim.on_message([&](const Message& m) { victim_got.emplace_back(m.bytes()); });
  victim.on_close([&](std::error_code code) { victim_closed = code; });
  sender.on_message([](const Message&) {});  // reads, so that it hears the close frame
  sender.on_close([&](std::error_code code) { sender_closed = code; });
  int healthy_got = 0;
  healthy_b.on_message([&](const Message& m) { EXPECT_EQ(m.bytes(), std::to_string(healthy_got++)); });
  healthy_b.on_close([&](std::error_code code) { healthy_closed = code; });

  sender.send("before");
  sender.stream().write(bad.bytes);  // raw bytes behind the framer's back
  sender.send("after");
  int healthy_sent = 0;
  for (; healthy_sent < 500; ++healthy_sent) healthy_a.send(std::to_string(healthy_sent));
  ASSERT_TRUE(run_until(io, [&] { return victim_closed && sender_closed && healthy_got == healthy_sent; }));
  EXPECT_EQ(*victim_closed, make_error_code(bad.error)) << victim_closed->message();
  EXPECT_EQ(*sender_closed, make_error_code(errc::rejected_by_peer)) << sender_closed->message();
  EXPECT_EQ(victim_got, std::vector<std::string>{"before"});
  // The healthy pair goes on after the bad stream is gone.
  for (; healthy_sent < 1000; ++healthy_sent) healthy_a.send(std::to_string(healthy_sent));
  ASSERT_TRUE(run_until(io, [&] { return healthy_got == healthy_sent; }));
  EXPECT_FALSE(healthy_closed);
  EXPECT_TRUE(healthy_a.is_open());
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, BadFrameClosesOnlyItsStream,
    ::testing::Values(BadInput{"reserved_bits", header(1, 2, 0x40) + "hi", errc::bad_frame_header},
                      BadInput{"unknown_type", header(9, 2) + "hi", errc::bad_frame_type},
                      BadInput{"oversized", header(2, 64 * 1024 + 1), errc::frame_too_large},
                      BadInput{"invalid_utf8", header(1, 3) + "\xe2\x28\xa1", errc::invalid_utf8},
                      BadInput{"bad_json", header(3, 7) + "{\"a\":,}", errc::invalid_json},
                      BadInput{"json_too_deep", header(3, 34) + std::string(17, '[') + std::string(17, ']'),
                               errc::invalid_json},
                      BadInput{"bad_control", header(4, 0), errc::bad_control_frame}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

TEST(FramedStream, ReceivingDoesNotAllocatePerMessage) {
  boost::asio::io_context io(1);
  auto [x, y] = socket_pair();
  Stream receiver_stream = Stream::adopt(io, y, 1, 1);
  FramedStream receiver = frame_stream(receiver_stream);
  // Frames written straight to the socket, so that only the receiving side runs in the loop.
  std::string batch;
  auto add = [&](detail::FrameType type, std::string_view payload) {
    std::string h(detail::frame_header_size, '\0');
    detail::write_frame_header(h.data(), type, static_cast<std::uint32_t>(payload.size()));
    batch += h;
    batch += payload;
  };
  for (int i = 0; i < 300; ++i) {
    add(detail::FrameType::binary, std::string(64, 'b'));
    add(detail::FrameType::text, "a short text message");
    add(detail::FrameType::json, R"({"type":"tick","seq":12345,"ok":true,"tags":["a","b"]})");
  }
  long received = 0, kinds = 0;
  receiver.on_message([&](const Message& m) {
    ++received;
    kinds += static_cast<int>(m.kind());
  });
  auto send_batch = [&] {
    ASSERT_EQ(::write(x, batch.data(), batch.size()), static_cast<ssize_t>(batch.size()));
  };
  send_batch();  // warm-up: buffers, the arena and Asio's handler memory reach their size
  ASSERT_TRUE(run_until(io, [&] { return received == 900; }));
  long before = allocations.load();
  for (int round = 0; round < 20; ++round) {
    send_batch();
    ASSERT_TRUE(run_until(io, [&] { return received == 900L * (round + 2); }));
  }
  long during = allocations.load() - before;
  EXPECT_LT(during, 100) << during << " allocations for " << 20 * 900 << " messages";
  EXPECT_EQ(kinds, received * 2);
  ::close(x);
}

TEST(FramedStream, SendingDoesNotAllocatePerMessage) {
  boost::asio::io_context io(1);
  auto [a, b] = framed_pair(io);
  b.on_message([](const Message&) {});
  boost::json::value value = boost::json::parse(R"({"type":"tick","seq":12345,"ok":true})");
  std::string payload(64, 'p');
  for (int i = 0; i < 1000; ++i) {
    a.send_binary(payload);
    a.send_json(value);
  }
  run_ready(io);
  long before = allocations.load();
  for (int i = 0; i < 1000; ++i) {
    a.send_binary(payload);
    a.send_json(value);
    a.send_text("text");
  }
  long during = allocations.load() - before;
  EXPECT_LT(during, 10) << during << " allocations for 3000 sends";
}

// --- across processes ---

TEST(FramedStreamAcrossFork, EveryKindFromAChildThatThenExits) {
  auto [parent_fd, child_fd] = socket_pair();
  constexpr int count = 300;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(parent_fd);
    boost::asio::io_context child_io(1);
    FramedStream framed = frame_stream(Stream::adopt(child_io, child_fd, 0, 0));
    for (int i = 0; i < count; ++i) framed.send(nth_message(i));
    framed.stream().end();
    child_io.run_for(std::chrono::seconds(30));
    ::_exit(framed.buffered_amount() == 0 ? 0 : 1);
  }
  ::close(child_fd);
  boost::asio::io_context io(1);
  FramedStream framed = frame_stream(Stream::adopt(io, parent_fd, 5, 1));
  int received = 0;
  std::optional<std::error_code> closed;
  framed.on_message([&](const Message& m) { EXPECT_TRUE(same(m, nth_message(received++))); });
  framed.on_close([&](std::error_code code) { closed = code; });
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(received, count);
  EXPECT_EQ(*closed, make_error_code(errc::peer_gone));
  EXPECT_TRUE(child_succeeded(pid));
}

TEST(FramedStreamAcrossFork, AChildKilledMidFrameEndsTheStreamAfterTheCompleteFrames) {
  auto [parent_fd, child_fd] = socket_pair();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(parent_fd);
    std::string bytes;
    for (int i = 0; i < 10; ++i) bytes += header(1, 1) + std::to_string(i);
    bytes += header(2, 1000) + "only part of the payload";
    if (::write(child_fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) ::_exit(1);
    ::raise(SIGKILL);
  }
  ::close(child_fd);
  boost::asio::io_context io(1);
  FramedStream framed = frame_stream(Stream::adopt(io, parent_fd, 5, 1));
  int received = 0;
  std::optional<std::error_code> closed;
  framed.on_message([&](const Message& m) { EXPECT_EQ(m.bytes(), std::to_string(received++)); });
  framed.on_close([&](std::error_code code) { closed = code; });
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(received, 10);
  EXPECT_EQ(*closed, make_error_code(errc::peer_gone));
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace
}  // namespace multinode::test

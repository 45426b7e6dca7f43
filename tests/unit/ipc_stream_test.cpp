// Stream over real socketpairs: in one io_context, and across fork() to see a
// peer process end or die.
#include "ipc_test_util.hpp"

#include <multinode/error.hpp>
#include <multinode/frame.hpp>
#include <multinode/stream.hpp>

#include "ipc/stream_state.hpp"

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <array>
#include <csignal>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace multinode::test {
namespace {

struct Observed {
  std::string data;
  int ends = 0;
  std::optional<std::error_code> closed;
  int drains = 0;
};

void observe(Stream& stream, Observed& seen) {
  stream.on_data([&seen](std::string_view chunk) { seen.data.append(chunk); });
  stream.on_end([&seen] { ++seen.ends; });
  stream.on_close([&seen](std::error_code code) { seen.closed = code; });
}

TEST(Stream, CarriesPeerIdentity) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  EXPECT_EQ(a.peer_id(), 2u);
  EXPECT_EQ(a.peer_slot(), 1u);
  EXPECT_EQ(b.peer_id(), 1u);
  EXPECT_EQ(b.peer_slot(), 0u);
  EXPECT_TRUE(a.is_open());
  Stream copy = a;
  EXPECT_TRUE(copy == a);
  EXPECT_FALSE(copy == b);
}

TEST(Stream, AdoptRefusesWhatIsNotAStreamSocket) {
  boost::asio::io_context io(1);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  EXPECT_THROW(Stream::adopt(io, fds[0], 1, 1), std::system_error);
  ::close(fds[1]);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_THROW(Stream::adopt(io, pipe_fds[0], 1, 1), std::system_error);
  ::close(pipe_fds[1]);
}

TEST(Stream, AdoptWithAnErrorCodeReportsInsteadOfThrowing) {
  boost::asio::io_context io(1);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  std::error_code error;
  Stream refused = Stream::adopt(io, fds[0], 1, 1, error);
  EXPECT_EQ(error, std::errc::wrong_protocol_type);
  EXPECT_FALSE(refused);
  EXPECT_EQ(::fcntl(fds[0], F_GETFD), -1) << "the fd is closed on failure too";
  ::close(fds[1]);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  refused = Stream::adopt(io, pipe_fds[0], 1, 1, error);
  EXPECT_EQ(error, std::errc::not_a_socket);
  EXPECT_FALSE(refused);
  ::close(pipe_fds[1]);
  auto [x, y] = socket_pair();
  Stream adopted = Stream::adopt(io, x, 3, 2, error);
  EXPECT_FALSE(error);
  ASSERT_TRUE(adopted);
  EXPECT_EQ(adopted.peer_id(), 3u);
  EXPECT_TRUE(adopted.is_open());
  ::close(y);
}

TEST(Stream, BytesArriveIntactAndInOrderThenEndAndClose) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  Observed at_a, at_b;
  observe(b, at_b);
  a.on_close([&](std::error_code code) { at_a.closed = code; });
  std::string sent = random_bytes(4 * 1024 * 1024 + 17, 1);
  std::mt19937 random(2);
  for (std::size_t at = 0; at < sent.size();) {
    std::size_t n = std::min<std::size_t>(sent.size() - at, 1 + random() % 100000);
    a.write(std::string_view(sent).substr(at, n));
    at += n;
  }
  a.end();
  EXPECT_FALSE(a.is_open());
  EXPECT_FALSE(a.write("after end"));
  ASSERT_TRUE(run_until(io, [&] { return at_b.closed && at_a.closed; }));
  EXPECT_TRUE(at_b.data == sent) << "received " << at_b.data.size() << " of " << sent.size();
  EXPECT_EQ(at_b.ends, 1);
  EXPECT_EQ(*at_b.closed, make_error_code(errc::peer_gone));
  EXPECT_EQ(*at_a.closed, make_error_code(errc::peer_gone));
  EXPECT_EQ(a.buffered(), 0u);
}

TEST(Stream, ReadingWaitsForAReaderSoNothingIsLost) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  a.write("sent before anyone listened");
  a.end();
  run_ready(io);
  // The peer has ended, but the data is unread: the stream must not close yet.
  Observed at_b;
  b.on_close([&](std::error_code code) { at_b.closed = code; });
  run_ready(io);
  EXPECT_FALSE(at_b.closed);
  b.on_end([&] { ++at_b.ends; });
  b.on_data([&](std::string_view chunk) { at_b.data.append(chunk); });
  ASSERT_TRUE(run_until(io, [&] { return at_b.closed.has_value(); }));
  EXPECT_EQ(at_b.data, "sent before anyone listened");
  EXPECT_EQ(at_b.ends, 1);
  // A close handler set after the fact still hears how the stream ended.
  std::optional<std::error_code> late;
  b.on_close([&](std::error_code code) { late = code; });
  ASSERT_TRUE(run_until(io, [&] { return late.has_value(); }));
  EXPECT_EQ(*late, make_error_code(errc::peer_gone));
}

TEST(Stream, CloseDropsWhatIsQueuedAndThePeerSeesItGone) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  Observed at_a, at_b;
  a.on_close([&](std::error_code code) { at_a.closed = code; });
  b.on_close([&](std::error_code code) { at_b.closed = code; });  // no reader on b: hang-up detection
  a.write("dropped");
  a.close();
  EXPECT_FALSE(a.is_open());
  EXPECT_FALSE(a.write("refused"));
  EXPECT_FALSE(at_a.closed) << "on_close runs from the event loop, not inside close()";
  ASSERT_TRUE(run_until(io, [&] { return at_a.closed && at_b.closed; }));
  EXPECT_EQ(*at_a.closed, make_error_code(errc::stream_closed));
  EXPECT_EQ(*at_b.closed, make_error_code(errc::peer_gone));
}

TEST(Stream, BackpressureReportsTheHighWaterMarkAndDrains) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  constexpr std::size_t mark = 64 * 1024;
  a.set_high_water_mark(mark);
  EXPECT_EQ(a.high_water_mark(), mark);
  std::string sent = random_bytes(16 * 1024 * 1024, 3);
  std::size_t at = 0;
  int refusals = 0, drains = 0;
  std::size_t buffered_when_refused = 0;
  // Writes until write() says stop; on_drain resumes, as a Node program would.
  std::function<void()> pump = [&] {
    while (at < sent.size()) {
      std::size_t n = std::min<std::size_t>(sent.size() - at, 8192);
      bool more = a.write(std::string_view(sent).substr(at, n));
      at += n;
      if (!more) {
        ++refusals;
        buffered_when_refused = std::max(buffered_when_refused, a.buffered());
        return;
      }
    }
    a.end();
  };
  a.on_drain([&] {
    ++drains;
    EXPECT_LT(a.buffered(), mark);
    pump();
  });
  pump();
  EXPECT_GE(refusals, 1);
  EXPECT_GE(buffered_when_refused, mark);
  // Nobody reads b yet: the kernel buffer fills and a's queue stays above the mark.
  run_ready(io);
  EXPECT_LT(at, sent.size());
  EXPECT_GE(a.buffered(), mark);
  Observed at_b;
  observe(b, at_b);
  ASSERT_TRUE(run_until(io, [&] { return at_b.closed.has_value(); }));
  EXPECT_TRUE(at_b.data == sent) << "received " << at_b.data.size() << " of " << sent.size();
  EXPECT_EQ(drains, refusals);
}

TEST(Stream, WritesThatIgnoreBackpressureAreStillAllDelivered) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  a.set_high_water_mark(1024);
  std::string sent = random_bytes(3 * 1024 * 1024, 4);
  for (std::size_t at = 0; at < sent.size(); at += 1000) a.write(std::string_view(sent).substr(at, 1000));
  EXPECT_EQ(a.buffered(), sent.size()) << "nothing reaches the kernel before the event loop runs";
  a.end();
  Observed at_b;
  observe(b, at_b);
  ASSERT_TRUE(run_until(io, [&] { return at_b.closed.has_value(); }));
  EXPECT_TRUE(at_b.data == sent);
}

TEST(Stream, AHandlerMayReplaceItselfAndPause) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::string first, second;
  b.on_data([&](std::string_view chunk) {
    first.append(chunk);
    b.on_data(nullptr);  // pause: what comes next waits
  });
  a.write("one");
  ASSERT_TRUE(run_until(io, [&] { return !first.empty(); }));
  a.write("two");
  a.end();
  run_ready(io);
  EXPECT_EQ(first, "one");
  std::optional<std::error_code> closed;
  b.on_close([&](std::error_code code) { closed = code; });
  b.on_data([&](std::string_view chunk) { second.append(chunk); });
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(second, "two");
}

TEST(Stream, AThrowingHandlerLosesNothingWhenTheLoopRunsAgain) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::string got;
  bool thrown = false;
  b.on_data([&](std::string_view chunk) {
    got.append(chunk);
    if (!thrown) {
      thrown = true;
      throw std::runtime_error("handler failed");
    }
  });
  a.write("first");
  bool caught = false;
  for (int i = 0; i < 1000 && !caught && got.empty(); ++i) {
    try {
      io.run_one_for(std::chrono::milliseconds(50));
    } catch (const std::runtime_error&) {
      caught = true;
    }
  }
  EXPECT_TRUE(caught);
  a.write("second");
  a.end();
  std::optional<std::error_code> closed;
  b.on_close([&](std::error_code code) { closed = code; });
  io.restart();
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(got, "firstsecond");
}

TEST(Stream, CoroutineReadsEverythingThenEof) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::string sent = random_bytes(2 * 1024 * 1024, 5);
  std::string got;
  boost::system::error_code last_error;
  std::size_t last_n = 1;
  bool finished = false;
  boost::asio::co_spawn(
      io,
      [&, b = b]() mutable -> boost::asio::awaitable<void> {
        char buffer[4096];
        for (;;) {
          auto [error, n] = co_await b.async_read_some(boost::asio::buffer(buffer),
                                                       boost::asio::as_tuple(boost::asio::use_awaitable));
          if (error) {
            last_error = error;
            last_n = n;
            break;
          }
          got.append(buffer, n);
        }
        finished = true;
      },
      boost::asio::detached);
  a.write(sent);
  a.end();
  ASSERT_TRUE(run_until(io, [&] { return finished; }));
  EXPECT_TRUE(got == sent);
  EXPECT_EQ(last_error, boost::asio::error::eof);
  EXPECT_EQ(last_n, 0u);
  EXPECT_THROW(b.on_data([](std::string_view) {}), std::logic_error);
}

TEST(Stream, CoroutineReadThrowsEofAtTheEndWithPlainUseAwaitable) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::string got;
  std::optional<boost::system::system_error> failure;
  boost::asio::co_spawn(
      io,
      [&, b = b]() mutable -> boost::asio::awaitable<void> {
        char buffer[64];
        try {
          for (;;) {
            std::size_t n =
                co_await b.async_read_some(boost::asio::buffer(buffer), boost::asio::use_awaitable);
            got.append(buffer, n);
          }
        } catch (const boost::system::system_error& e) {
          failure = e;
        }
      },
      boost::asio::detached);
  a.write("last");
  a.end();
  ASSERT_TRUE(run_until(io, [&] { return failure.has_value(); }));
  EXPECT_EQ(got, "last");
  EXPECT_EQ(failure->code(), boost::asio::error::eof);
}

// Reads with a callback until the end; returns what was read and the final (error, bytes).
struct CallbackReader {
  Stream stream;
  char buffer[1000];
  std::string got;
  std::optional<std::pair<boost::system::error_code, std::size_t>> last;
  int calls_inside = 0;  // completions seen inside async_read_some: must stay 0
  bool in_call = false;

  void read() {
    in_call = true;
    stream.async_read_some(boost::asio::buffer(buffer),
                           [this](boost::system::error_code error, std::size_t n) {
                             if (in_call) ++calls_inside;
                             if (error) {
                               last.emplace(error, n);
                               return;
                             }
                             got.append(buffer, n);
                             read();
                           });
    in_call = false;
  }
};

TEST(Stream, CallbackReadsEverythingThenEofFromTheEventLoop) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::string sent = random_bytes(512 * 1024, 8);
  a.write(sent);
  a.end();
  CallbackReader reader{b};
  run_ready(io);  // the data is already in the socket: the first read completes at once, still posted
  reader.read();
  ASSERT_TRUE(run_until(io, [&] { return reader.last.has_value(); }));
  EXPECT_TRUE(reader.got == sent) << "received " << reader.got.size() << " of " << sent.size();
  EXPECT_EQ(reader.last->first, boost::asio::error::eof);
  EXPECT_EQ(reader.last->second, 0u);
  EXPECT_EQ(reader.calls_inside, 0);
  // At the end, every further read completes with eof too.
  std::optional<boost::system::error_code> again;
  b.async_read_some(boost::asio::buffer(reader.buffer), [&](boost::system::error_code error, std::size_t n) {
    again = error;
    EXPECT_EQ(n, 0u);
  });
  EXPECT_FALSE(again) << "not from inside the call";
  ASSERT_TRUE(run_until(io, [&] { return again.has_value(); }));
  EXPECT_EQ(*again, boost::asio::error::eof);
}

TEST(Stream, CallbackReadWaitsForDataAndEndsWithEofOnClose) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  char buffer[16];
  std::optional<std::pair<boost::system::error_code, std::size_t>> first, second;
  b.async_read_some(boost::asio::buffer(buffer),
                    [&](boost::system::error_code error, std::size_t n) { first.emplace(error, n); });
  run_ready(io);
  EXPECT_FALSE(first) << "nothing was sent yet";
  a.write("hi");
  ASSERT_TRUE(run_until(io, [&] { return first.has_value(); }));
  EXPECT_FALSE(first->first);
  EXPECT_EQ(std::string(buffer, first->second), "hi");
  // A read pending when this side closes completes with eof.
  b.async_read_some(boost::asio::buffer(buffer),
                    [&](boost::system::error_code error, std::size_t n) { second.emplace(error, n); });
  run_ready(io);
  EXPECT_FALSE(second);
  b.close();
  ASSERT_TRUE(run_until(io, [&] { return second.has_value(); }));
  EXPECT_EQ(second->first, boost::asio::error::eof);
  EXPECT_EQ(second->second, 0u);
}

TEST(Stream, AnEmptyBufferCompletesAtOnceWithoutError) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  std::optional<std::pair<boost::system::error_code, std::size_t>> result;
  b.async_read_some(boost::asio::mutable_buffer(),
                    [&](boost::system::error_code error, std::size_t n) { result.emplace(error, n); });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_FALSE(result->first);
  EXPECT_EQ(result->second, 0u);
}

TEST(Stream, UseFutureReadsAndReportsEofAsAnException) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  char buffer[64];
  std::future<std::size_t> read = b.async_read_some(boost::asio::buffer(buffer), boost::asio::use_future);
  a.write("future");
  ASSERT_TRUE(run_until(io, [&] { return read.wait_for(0s) == std::future_status::ready; }));
  std::size_t n = read.get();
  EXPECT_EQ(std::string(buffer, n), "future");
  a.end();
  std::future<std::size_t> at_end = b.async_read_some(boost::asio::buffer(buffer), boost::asio::use_future);
  ASSERT_TRUE(run_until(io, [&] { return at_end.wait_for(0s) == std::future_status::ready; }));
  try {
    at_end.get();
    ADD_FAILURE() << "no eof";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), boost::asio::error::eof);
  }
}

TEST(Stream, DeferredReadStartsWhenLaunched) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  char buffer[64];
  auto read = b.async_read_some(boost::asio::buffer(buffer), boost::asio::deferred);
  a.write("deferred");
  run_ready(io);
  std::optional<std::pair<boost::system::error_code, std::size_t>> result;
  std::move(read)([&](boost::system::error_code error, std::size_t n) { result.emplace(error, n); });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_FALSE(result->first);
  EXPECT_EQ(std::string(buffer, result->second), "deferred");
}

TEST(Stream, RedirectErrorGivesEofInAnErrorCode) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  boost::system::error_code error;
  std::optional<std::size_t> n;
  boost::asio::co_spawn(
      io,
      [&, b = b]() mutable -> boost::asio::awaitable<void> {
        char buffer[8];
        n = co_await b.async_read_some(boost::asio::buffer(buffer),
                                       boost::asio::redirect_error(boost::asio::use_awaitable, error));
      },
      boost::asio::detached);
  a.close();  // the peer goes away before anything was sent
  ASSERT_TRUE(run_until(io, [&] { return n.has_value(); }));
  EXPECT_EQ(error, boost::asio::error::eof);
  EXPECT_EQ(*n, 0u);
}

TEST(Stream, AsyncReadSomeOnAnEmptyHandleThrows) {
  Stream empty;
  char buffer[8];
  EXPECT_THROW(
      empty.async_read_some(boost::asio::buffer(buffer), [](boost::system::error_code, std::size_t) {}),
      std::invalid_argument);
  EXPECT_THROW(empty.get_executor(), std::invalid_argument);
}

TEST(Stream, AReadPendingWhenTheIoContextGoesIsDroppedUncalled) {
  std::weak_ptr<detail::StreamState> watch;
  bool called = false;
  {
    boost::asio::io_context io(1);
    auto [a, b] = stream_pair(io);
    watch = detail::StreamAccess::state(b);
    auto buffer = std::make_shared<std::array<char, 16>>();
    // The handler holds the stream's handle: dropping it must free the stream.
    b.async_read_some(boost::asio::buffer(*buffer),
                      [&called, b = b, buffer](boost::system::error_code, std::size_t) {
                        (void)b;
                        called = true;
                      });
    run_ready(io);
  }
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

TEST(Stream, ReadersDoNotMix) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  a.on_data([](std::string_view) {});
  EXPECT_THROW(frame_stream(a), std::logic_error);
  FramedStream framed = frame_stream(b);
  EXPECT_THROW(b.on_data([](std::string_view) {}), std::logic_error);
  std::exception_ptr failure;
  boost::asio::co_spawn(
      io,
      [b = b]() mutable -> boost::asio::awaitable<void> {
        char buffer[16];
        co_await b.async_read_some(boost::asio::buffer(buffer), boost::asio::use_awaitable);
      },
      [&](std::exception_ptr e) { failure = e; });
  ASSERT_TRUE(run_until(io, [&] { return failure != nullptr; }));
  EXPECT_THROW(std::rethrow_exception(failure), std::logic_error);
}

TEST(Stream, DestroyingTheIoContextFreesStreamsWhoseHandlersHoldThem) {
  std::weak_ptr<detail::StreamState> watch_a, watch_b;
  Stream kept;
  {
    boost::asio::io_context io(1);
    auto [a, b] = stream_pair(io);
    watch_a = detail::StreamAccess::state(a);
    watch_b = detail::StreamAccess::state(b);
    // Each handler holds a handle to its own stream: a cycle only the io_context's end can break.
    a.on_data([a](std::string_view) { (void)a; });
    b.on_close([b](std::error_code) { (void)b; });
    b.on_drain([b] { (void)b; });
    a.write("pending");
    kept = b;
    run_ready(io);
  }
  EXPECT_TRUE(watch_a.expired());
  EXPECT_FALSE(watch_b.expired());  // `kept` still refers to it
  EXPECT_FALSE(kept.is_open());
  EXPECT_FALSE(kept.write("after the io_context"));
  kept.close();
  kept.on_close([](std::error_code) { ADD_FAILURE() << "no event after the io_context is gone"; });
  kept = Stream();
  EXPECT_TRUE(watch_b.expired());
}

TEST(Stream, BusyPollingStillDeliversEveryReply) {
  boost::asio::io_context io(1);
  auto [a, b] = stream_pair(io);
  a.set_busy_poll(std::chrono::microseconds(200));
  b.set_busy_poll(std::chrono::microseconds(200));
  b.on_data([&](std::string_view chunk) { b.write(chunk); });  // echo
  int replies = 0;
  std::string pending;
  a.on_data([&](std::string_view chunk) {
    pending.append(chunk);
    while (pending.size() >= 4) {
      EXPECT_EQ(pending.substr(0, 4), "ping");
      pending.erase(0, 4);
      if (++replies < 2000) a.write("ping");
    }
  });
  a.write("ping");
  ASSERT_TRUE(run_until(io, [&] { return replies == 2000; }));
  EXPECT_TRUE(pending.empty());
}

// --- across processes ---

TEST(StreamAcrossFork, DataThenPeerExitEndsTheStream) {
  auto [parent_fd, child_fd] = socket_pair();
  std::string sent = random_bytes(1024 * 1024, 6);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(parent_fd);
    // The child has its own loop: the parent's epoll must not be shared.
    boost::asio::io_context child_io(1);
    Stream stream = Stream::adopt(child_io, child_fd, 0, 0);
    stream.write(sent);
    stream.end();
    child_io.run_for(std::chrono::seconds(30));
    ::_exit(0);
  }
  ::close(child_fd);
  boost::asio::io_context io(1);
  Stream stream = Stream::adopt(io, parent_fd, 7, 1);
  Observed seen;
  observe(stream, seen);
  ASSERT_TRUE(run_until(io, [&] { return seen.closed.has_value(); }));
  EXPECT_TRUE(seen.data == sent);
  EXPECT_EQ(seen.ends, 1);
  EXPECT_EQ(*seen.closed, make_error_code(errc::peer_gone));
  EXPECT_TRUE(child_succeeded(pid));
}

TEST(StreamAcrossFork, APeerKilledWhileNobodyReadsIsNoticed) {
  auto [parent_fd, child_fd] = socket_pair();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(parent_fd);
    ::pause();
    ::_exit(1);
  }
  ::close(child_fd);
  boost::asio::io_context io(1);
  Stream stream = Stream::adopt(io, parent_fd, 7, 1);
  std::optional<std::error_code> closed;
  stream.on_close([&](std::error_code code) { closed = code; });
  run_ready(io);
  EXPECT_FALSE(closed);
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(*closed, make_error_code(errc::peer_gone));
  int status = 0;
  ::waitpid(pid, &status, 0);
}

TEST(StreamAcrossFork, DataFromADeadPeerWaitsForTheReader) {
  auto [parent_fd, child_fd] = socket_pair();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(parent_fd);
    const char last_words[] = "last words";
    if (::write(child_fd, last_words, sizeof last_words - 1) != sizeof last_words - 1) ::_exit(1);
    ::raise(SIGKILL);
  }
  ::close(child_fd);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  boost::asio::io_context io(1);
  Stream stream = Stream::adopt(io, parent_fd, 7, 1);
  std::optional<std::error_code> closed;
  stream.on_close([&](std::error_code code) { closed = code; });
  run_ready(io);
  EXPECT_FALSE(closed) << "unread data keeps the stream open until it is read";
  std::string got;
  stream.on_data([&](std::string_view chunk) { got.append(chunk); });
  ASSERT_TRUE(run_until(io, [&] { return closed.has_value(); }));
  EXPECT_EQ(got, "last words");
  EXPECT_EQ(*closed, make_error_code(errc::peer_gone));
}

TEST(StreamAcrossFork, AdoptedDescriptorsAreNotInheritedAcrossExec) {
  boost::asio::io_context io(1);
  auto [x, y] = socket_pair();
  Stream stream = Stream::adopt(io, x, 1, 1);
  int flags = ::fcntl(x, F_GETFD);
  EXPECT_TRUE(flags & FD_CLOEXEC);
  ::close(y);
}

}  // namespace
}  // namespace multinode::test

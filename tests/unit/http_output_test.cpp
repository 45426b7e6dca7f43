// A connection's output (src/http/output.hpp) and the bytes the serializer puts
// in it (src/http/serializer.hpp): order across copied and owned pieces, partial
// writes, the writev buffer limit, giving memory back; status lines, heads, chunk
// framing, error responses, reason phrases.
#include "http/output.hpp"
#include "http/serializer.hpp"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>

#include <string>
#include <vector>

namespace multinode::http::detail {
namespace {

// What buffers() would send, concatenated.
std::string pending(const OutputQueue& queue, std::size_t max_buffers = 64) {
  std::vector<boost::asio::const_buffer> buffers;
  queue.buffers(buffers, max_buffers);
  std::string out;
  for (const auto& buffer : buffers) out.append(static_cast<const char*>(buffer.data()), buffer.size());
  return out;
}

std::string text(const OutputQueue& queue) {
  return pending(queue, 1000);
}

TEST(ByteBuffer, AppendsAndGrows) {
  ByteBuffer buffer;
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), 0u);
  buffer.append("abc");
  buffer.push_back('d');
  EXPECT_EQ(std::string(buffer.data(), buffer.size()), "abcd");
  EXPECT_GE(buffer.capacity(), 1024u);  // the first growth is at least 1 KiB
  const std::string big(5000, 'x');
  buffer.append(big);
  ASSERT_EQ(buffer.size(), 5004u);
  EXPECT_EQ(std::string(buffer.data(), 4), "abcd");
  EXPECT_EQ(std::string(buffer.data() + 4, 5000), big);
  buffer.append({});
  EXPECT_EQ(buffer.size(), 5004u);
}

TEST(ByteBuffer, ClearKeepsTheMemoryFreeMemoryGivesItBack) {
  ByteBuffer buffer;
  buffer.append(std::string(3000, 'x'));
  const std::size_t capacity = buffer.capacity();
  buffer.clear();
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), capacity);
  buffer.free_memory();
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), 0u);
  buffer.append("again");
  EXPECT_EQ(std::string(buffer.data(), buffer.size()), "again");
}

TEST(OutputQueue, SmallPiecesAreOneBuffer) {
  OutputQueue queue;
  EXPECT_TRUE(queue.empty());
  queue.append("HTTP/1.1 200 OK\r\n");
  queue.append('\r');
  queue.append('\n');
  queue.append_owned(std::string("small body"));  // under the threshold: copied
  std::vector<boost::asio::const_buffer> buffers;
  queue.buffers(buffers);
  EXPECT_EQ(buffers.size(), 1u);
  EXPECT_EQ(text(queue), "HTTP/1.1 200 OK\r\n\r\nsmall body");
  EXPECT_EQ(queue.size(), text(queue).size());
}

TEST(OutputQueue, LargeOwnedBodiesKeepTheirPlaceInTheOrder) {
  OutputQueue queue;
  const std::string first(OutputQueue::owned_threshold, 'a');
  const std::string second(OutputQueue::owned_threshold + 1, 'b');
  queue.append("head1;");
  queue.append_owned(std::string(first));
  queue.append("head2;");
  queue.append_owned(std::string(second));
  queue.append("tail");
  std::vector<boost::asio::const_buffer> buffers;
  queue.buffers(buffers);
  EXPECT_EQ(buffers.size(), 5u);  // moved in, not copied
  EXPECT_EQ(text(queue), "head1;" + first + "head2;" + second + "tail");
  EXPECT_EQ(queue.size(), 6 + first.size() + 6 + second.size() + 4);
}

TEST(OutputQueue, PartialWritesResumeAtTheRightByte) {
  OutputQueue queue;
  const std::string body(OutputQueue::owned_threshold, 'z');
  queue.append("0123456789");
  queue.append_owned(std::string(body));
  queue.append("end");
  const std::string all = text(queue);
  // Consume at every interesting boundary: inside the copied bytes, exactly at
  // the owned piece, inside it, and into the tail.
  std::size_t written = 0;
  for (const std::size_t step :
       {std::size_t{3}, std::size_t{7}, std::size_t{100}, body.size() - 100, std::size_t{1}}) {
    queue.consume(step);
    written += step;
    EXPECT_EQ(text(queue), all.substr(written)) << written;
    EXPECT_EQ(queue.size(), all.size() - written);
  }
  queue.consume(queue.size());
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(text(queue), "");
  // Everything sent: the queue starts afresh.
  queue.append("next");
  EXPECT_EQ(text(queue), "next");
}

TEST(OutputQueue, BuffersStopAtTheLimit) {
  OutputQueue queue;
  std::string expected;
  for (int i = 0; i < 4; ++i) {
    const std::string piece = std::to_string(i) + ";";
    queue.append(piece);
    queue.append_owned(std::string(OutputQueue::owned_threshold, static_cast<char>('a' + i)));
    expected += piece + std::string(OutputQueue::owned_threshold, static_cast<char>('a' + i));
  }
  std::vector<boost::asio::const_buffer> buffers;
  queue.buffers(buffers, 3);
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(pending(queue, 3), expected.substr(0, 2 + OutputQueue::owned_threshold + 2));
  // After sending those, the rest follows.
  queue.consume(2 + OutputQueue::owned_threshold + 2);
  EXPECT_EQ(text(queue), expected.substr(2 + OutputQueue::owned_threshold + 2));
}

TEST(OutputQueue, FreeMemoryOnlyWhenEmptyAndLarge) {
  OutputQueue queue;
  queue.append(std::string(100 * 1024, 'x'));
  queue.free_memory(64 * 1024);  // still to be sent: kept
  EXPECT_EQ(queue.size(), 100u * 1024);
  queue.consume(queue.size());
  queue.free_memory(64 * 1024);
  EXPECT_TRUE(queue.empty());
  queue.append("small");
  queue.consume(5);
  queue.free_memory(64 * 1024);  // small buffers are kept for the next response
  queue.append("ok");
  EXPECT_EQ(text(queue), "ok");
}

TEST(Serializer, ReasonPhrases) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(100), "Continue");
  EXPECT_EQ(reason_phrase(400), "Bad Request");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(408), "Request Timeout");
  EXPECT_EQ(reason_phrase(413), "Payload Too Large");
  EXPECT_EQ(reason_phrase(414), "URI Too Long");
  EXPECT_EQ(reason_phrase(417), "Expectation Failed");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(500), "Internal Server Error");
  EXPECT_EQ(reason_phrase(501), "Not Implemented");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(599), "Network Connect Timeout Error");
  EXPECT_EQ(reason_phrase(299), "Unknown");
  EXPECT_EQ(reason_phrase(999), "Unknown");
  EXPECT_EQ(reason_phrase(0), "Unknown");
}

TEST(Serializer, StatusLines) {
  OutputQueue queue;
  write_status_line(queue, 200);
  write_status_line(queue, 404);
  write_status_line(queue, 999);
  EXPECT_EQ(text(queue), "HTTP/1.1 200 OK\r\nHTTP/1.1 404 Not Found\r\nHTTP/1.1 999 Unknown\r\n");
}

TEST(Serializer, Heads) {
  const std::string_view date = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
  OutputQueue queue;
  HeadFraming length;
  length.content_length = 12;
  write_head(queue, 200, date, length, "X-A: 1\r\n");
  EXPECT_EQ(text(queue),
            std::string("HTTP/1.1 200 OK\r\n") + std::string(date) + "Content-Length: 12\r\nX-A: 1\r\n\r\n");
  queue.clear();
  HeadFraming chunked;
  chunked.chunked = true;
  chunked.close = true;
  write_head(queue, 201, {}, chunked, {});
  EXPECT_EQ(text(queue), "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  queue.clear();
  HeadFraming keep_alive;
  keep_alive.keep_alive = true;
  write_head(queue, 204, {}, keep_alive, {});
  EXPECT_EQ(text(queue), "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
  queue.clear();
  HeadFraming zero;
  zero.content_length = 0;
  write_head(queue, 200, {}, zero, {});
  EXPECT_EQ(text(queue), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(Serializer, ChunkFramingAndContinue) {
  OutputQueue queue;
  write_continue(queue);
  write_chunk(queue, "hello");
  write_chunk(queue, std::string(255, 'x'));
  write_last_chunk(queue, "X-Sum: 9\r\n");
  EXPECT_EQ(text(queue), "HTTP/1.1 100 Continue\r\n\r\n5\r\nhello\r\nff\r\n" + std::string(255, 'x') +
                             "\r\n0\r\nX-Sum: 9\r\n\r\n");
  queue.clear();
  write_last_chunk(queue, {});
  EXPECT_EQ(text(queue), "0\r\n\r\n");
}

TEST(Serializer, ErrorResponses) {
  OutputQueue queue;
  write_error(queue, 400, "Date: x\r\n");
  EXPECT_EQ(text(queue),
            "HTTP/1.1 400 Bad Request\r\nDate: x\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
            "Connection: close\r\n\r\nBad Request\n");
}

}  // namespace
}  // namespace multinode::http::detail

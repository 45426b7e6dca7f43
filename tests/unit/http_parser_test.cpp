// The request parser and its strict policy, through RequestReader as a connection
// drives it. Every case is parsed whole, cut at every byte offset, and fed one byte
// at a time; all must agree.
#include "http_parse_harness.hpp"

#include <gtest/gtest.h>

#include <string>

namespace multinode::http::test {
namespace {

// Parses whole, then cut once at every offset, then one byte at a time; every way
// must give the same outcome. Returns the outcome of the whole input.
ParseOutcome parse_every_way(const Options& options, std::string_view input) {
  SCOPED_TRACE(::testing::Message() << "input: " << ::testing::PrintToString(std::string(input)));
  const ParseOutcome whole = parse_whole(options, input);
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    const ParseOutcome split = parse_pieces(options, input, {cut});
    EXPECT_EQ(split, whole) << "cut at " << cut << ":\n"
                            << describe(split) << "\nwhole:\n"
                            << describe(whole);
    if (split != whole) break;  // one report per input is enough
  }
  const ParseOutcome bytewise = parse_bytewise(options, input);
  EXPECT_EQ(bytewise, whole) << "byte by byte:\n" << describe(bytewise) << "\nwhole:\n" << describe(whole);
  return whole;
}

ParseOutcome parse_every_way(std::string_view input) {
  return parse_every_way(Options{}, input);
}

// The input is refused for this reason after `good` requests, whichever way it is cut.
void expect_refused(const Options& options, std::string_view input, error reason, std::size_t good = 0) {
  SCOPED_TRACE(::testing::Message() << "input: " << ::testing::PrintToString(std::string(input)));
  const ParseOutcome outcome = parse_every_way(options, input);
  ASSERT_TRUE(outcome.failure.has_value()) << describe(outcome);
  EXPECT_EQ(*outcome.failure, reason) << "got: " << make_error_code(*outcome.failure).message()
                                      << "\nwant: " << make_error_code(reason).message();
  EXPECT_EQ(outcome.requests.size(), good);
}

void expect_refused(std::string_view input, error reason, std::size_t good = 0) {
  expect_refused(Options{}, input, reason, good);
}

TEST(HttpParser, SimpleGet) {
  const auto outcome = parse_every_way("GET /hello?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  const ParsedRequest& r = outcome.requests[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/hello?x=1");
  EXPECT_EQ(r.version, 11);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Host", "example.com"}));
  EXPECT_EQ(r.headers[1], (std::pair<std::string, std::string>{"Accept", "*/*"}));
  EXPECT_TRUE(r.keep_alive);
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(outcome.failure);
  EXPECT_FALSE(outcome.partial);
}

TEST(HttpParser, FieldValuesAreTrimmedAndMayBeEmptyOrHoldObsText) {
  const auto outcome = parse_every_way(
      "GET / HTTP/1.1\r\nHost:a\r\nX-Empty:\r\nX-Spaces: \t padded value \t\r\nX-Latin: caf\xc3\xa9\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  const auto& h = outcome.requests[0].headers;
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].second, "a");
  EXPECT_EQ(h[1].second, "");
  EXPECT_EQ(h[2].second, "padded value");
  EXPECT_EQ(h[3].second, "caf\xc3\xa9");
}

TEST(HttpParser, PipelinedRequestsWithBodies) {
  const std::string input =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "GET /d HTTP/1.1\r\nHost: h\r\n\r\n";
  const auto outcome = parse_every_way(input);
  ASSERT_EQ(outcome.requests.size(), 4u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].target, "/a");
  EXPECT_EQ(outcome.requests[1].body, "hello");
  EXPECT_EQ(outcome.requests[2].body, "abc");
  EXPECT_TRUE(outcome.requests[2].chunked);
  EXPECT_EQ(outcome.requests[3].target, "/d");
  EXPECT_FALSE(outcome.partial);
}

TEST(HttpParser, ChunkedBodyWithExtensionsAndTrailers) {
  const auto outcome = parse_every_way(
      "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "6;quoted=\"a b\";flag\r\n world\r\n"
      "000\r\nX-Checksum: 42\r\nX-Other: yes\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  const ParsedRequest& r = outcome.requests[0];
  EXPECT_EQ(r.body, "hello world");
  ASSERT_EQ(r.trailers.size(), 2u);
  EXPECT_EQ(r.trailers[0], (std::pair<std::string, std::string>{"X-Checksum", "42"}));
  EXPECT_EQ(r.trailers[1], (std::pair<std::string, std::string>{"X-Other", "yes"}));
  EXPECT_EQ(r.headers.size(), 2u);  // trailers are not headers
}

TEST(HttpParser, ChunkedBodyOfManyChunksIsJoinedInPlace) {
  std::string input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    std::string piece(static_cast<std::size_t>(i % 37 + 1), static_cast<char>('a' + i % 26));
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    input += std::string(size) + "\r\n" + piece + "\r\n";
    expected += piece;
  }
  input += "0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  Options options;
  options.read_buffer_size = 1024;  // forces compaction and growth under the body
  const auto outcome = parse_every_way(options, input);
  ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].body, expected);
  EXPECT_EQ(outcome.requests[1].target, "/next");
}

TEST(HttpParser, LargeContentLengthBodyGrowsTheBuffer) {
  const std::string body(20000, 'x');
  const std::string input = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20000\r\n\r\n" + body;
  Options options;
  options.read_buffer_size = 1024;
  const auto outcome = parse_every_way(options, input);
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].body, body);
}

TEST(HttpParser, StreamedBodyArrivesInPiecesAndAddsUp) {
  Options options;
  options.stream_body = true;
  options.read_buffer_size = 1024;
  std::string chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    std::string piece(100, static_cast<char>('A' + i % 26));
    chunked += "64\r\n" + piece + "\r\n";
    expected += piece;
  }
  chunked += "0\r\nTrailer-Name: v\r\n\r\n";
  const auto outcome = parse_every_way(options, chunked);
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].body, expected);
  ASSERT_EQ(outcome.requests[0].trailers.size(), 1u);
  EXPECT_EQ(outcome.requests[0].method, "POST");  // the head stayed valid under the streamed body

  const std::string body(5000, 'z');
  const auto sized =
      parse_every_way(options, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + body);
  ASSERT_EQ(sized.requests.size(), 1u) << describe(sized);
  EXPECT_EQ(sized.requests[0].body, body);
}

TEST(HttpParser, Http10KeepAliveOnlyWhenAsked) {
  auto outcome = parse_every_way("GET / HTTP/1.0\r\n\r\nGET /second HTTP/1.0\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);  // no Host needed; closes after
  EXPECT_EQ(outcome.requests[0].version, 10);
  EXPECT_FALSE(outcome.requests[0].keep_alive);

  outcome = parse_every_way("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
  EXPECT_TRUE(outcome.requests[0].keep_alive);
  EXPECT_FALSE(outcome.requests[1].keep_alive);
}

TEST(HttpParser, ConnectionCloseEndsTheConnection) {
  const auto outcome = parse_every_way(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_FALSE(outcome.requests[0].keep_alive);
}

TEST(HttpParser, ExpectContinueIsReportedBeforeTheBody) {
  const auto outcome =
      parse_every_way("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_TRUE(outcome.requests[0].expects_continue_head);
  EXPECT_EQ(outcome.requests[0].body, "abc");
}

TEST(HttpParser, AnyTokenIsAMethod) {
  const auto outcome =
      parse_every_way("PURGE /cache HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].method, "PURGE");
  EXPECT_EQ(outcome.requests[1].method, "HEAD");
}

TEST(HttpParser, EmptyLinesBeforeARequestAreIgnored) {
  const auto outcome = parse_every_way(
      "\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: h\r\n\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 3u) << describe(outcome);
  EXPECT_EQ(outcome.requests[1].body, "ok");
  EXPECT_EQ(outcome.requests[2].target, "/c");
  EXPECT_FALSE(outcome.partial);
}

TEST(HttpParser, IncompleteInputIsPartialNotRefused) {
  const auto outcome = parse_every_way("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_TRUE(outcome.requests.empty());
  EXPECT_FALSE(outcome.failure);
  EXPECT_TRUE(outcome.partial);
}

TEST(HttpParser, CaseInsensitiveLookup) {
  Options options;
  detail::RequestReader reader(options);
  const std::string input =
      "GET / HTTP/1.1\r\nHOST: h\r\ncontent-TYPE: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
  auto room = reader.prepare();
  ASSERT_GE(room.size(), input.size());
  std::memcpy(room.data(), input.data(), input.size());
  reader.commit(input.size());
  ASSERT_EQ(reader.next(), detail::ReadEvent::head);
  ASSERT_EQ(reader.next(), detail::ReadEvent::complete);
  const Request& r = reader.request();
  EXPECT_EQ(r.header("host"), "h");
  EXPECT_EQ(r.header("Content-Type"), "text/plain");
  EXPECT_EQ(r.header("x-a"), "1");  // the first of repeated fields
  EXPECT_EQ(r.header("missing"), "");
  EXPECT_EQ(r.find("missing"), nullptr);
  ASSERT_NE(r.find("X-A"), nullptr);
  EXPECT_EQ(r.find("X-A")->name, "X-A");
  EXPECT_EQ(r.path(), "/");
  EXPECT_EQ(r.query(), "");
}

TEST(HttpParser, ConnectionOptionsAreATokenList) {
  // Connection and Proxy-Connection: comma-separated tokens, empty elements allowed,
  // compared case-insensitively; anything else in the list is a malformed field.
  auto outcome = parse_every_way(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: , Keep-Alive ,TE\r\n\r\n"
      "GET /2 HTTP/1.1\r\nHost: h\r\nProxy-Connection: CLOSE\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
  EXPECT_TRUE(outcome.requests[0].keep_alive);
  EXPECT_FALSE(outcome.requests[1].keep_alive);
  outcome = parse_every_way("GET / HTTP/1.0\r\nConnection: te, keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
  EXPECT_TRUE(outcome.requests[0].keep_alive);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep alive\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nConnection: close;x=1\r\n\r\n", error::bad_header);
}

TEST(HttpParser, FieldRefusalsComeInFieldOrderOnceTheHeadIsComplete) {
  // The first refused field decides, and only once the head is complete: the head
  // may still turn out to be too large or malformed in its line endings.
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nBad Name: x\r\n\r\n", error::duplicate_host);
  expect_refused("GET / HTTP/1.1\r\nBad Name: x\r\nHost: a\r\nHost: b\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nX: 1\nY: 2\r\n\r\n", error::bad_header);
  Options options;
  options.max_header_bytes = 100;
  expect_refused(options, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nX: " + std::string(100, 'v') + "\r\n\r\n",
                 error::header_too_large);
  const auto waiting = parse_every_way("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n");
  EXPECT_FALSE(waiting.failure) << describe(waiting);
  EXPECT_TRUE(waiting.partial);
  // A field line followed by a folded one is refused as obs-fold, whatever else is wrong with it.
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n y\r\n\r\n", error::obs_fold);
  expect_refused("GET / HTTP/1.1\r\n Host: h\r\n\r\n", error::bad_header);
}

TEST(HttpParser, ChunkExtensionsAndTheCrlfAfterData) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  const auto outcome = parse_every_way(head + "2;a;b=c;d=\"q\\\"\\\\ \\\t\x80\";e\r\nab\r\n0;z=\"\"\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_EQ(outcome.requests[0].body, "ab");
  for (const char* line : {"2;\r\n", "2;=b\r\n", "2;a=\r\n", "2;a=b=c\r\n", "2;a=\"b\"c\r\n", "2;a=\"b\\\r\n",
                           "2;a=\"\\\x01\"\r\n", "2;a\"\r\n", "2g\r\n", "2,a\r\n"})
    expect_refused(head + line + "ab\r\n0\r\n\r\n", error::bad_chunk);
  // The CRLF after chunk data is refused at its first wrong byte, before more arrives.
  expect_refused(head + "2\r\nabX", error::bad_chunk);
  expect_refused(head + "2\r\nab\rX", error::bad_chunk);
  const auto waiting = parse_every_way(head + "2\r\nab\r");
  EXPECT_FALSE(waiting.failure) << describe(waiting);
  EXPECT_TRUE(waiting.partial);
}

TEST(HttpParser, ViewsFollowTheBytesWhenTheBufferIsCompacted) {
  // Heads and trailer sections are recorded as views while they arrive; compacting
  // or growing the buffer under them must move the views too.
  Options options;
  options.read_buffer_size = 1024;
  std::string input;
  for (int i = 0; i < 30; ++i) {
    const std::string n = std::to_string(i);
    input += "GET /r" + n + " HTTP/1.1\r\nHost: h" + n + "\r\nX-A: " + std::string(40, 'a') + n +
             "\r\nX-B: " + std::string(60, 'b') + n + "\r\n\r\n";
  }
  input += "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" +
           std::string(1024, 'x') + "\r\n0\r\nT-1: " + std::string(900, '1') +
           "\r\nT-2: " + std::string(900, '2') + "\r\n\r\n";
  for (bool stream : {false, true}) {
    options.stream_body = stream;
    const auto outcome = parse_every_way(options, input);
    ASSERT_EQ(outcome.requests.size(), 31u) << describe(outcome);
    const ParsedRequest& last_get = outcome.requests[29];
    EXPECT_EQ(last_get.target, "/r29");
    ASSERT_EQ(last_get.headers.size(), 3u);
    EXPECT_EQ(last_get.headers[2].second, std::string(60, 'b') + "29");
    const ParsedRequest& post = outcome.requests[30];
    EXPECT_EQ(post.body, std::string(1024, 'x'));
    ASSERT_EQ(post.trailers.size(), 2u);
    EXPECT_EQ(post.trailers[0].second, std::string(900, '1'));
    EXPECT_EQ(post.trailers[1].second, std::string(900, '2'));
  }
}

// --- request smuggling: every form is refused and nothing after it is parsed ---

TEST(HttpParserSmuggling, TransferEncodingWhoseLastCodingIsNotChunked) {
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "identity\r\n\r\n0\r\n\r\n",
      error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
}

TEST(HttpParserSmuggling, UnsupportedCodingBeforeChunked) {
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                 error::unsupported_transfer_coding);
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      error::unsupported_transfer_coding);
}

TEST(HttpParserSmuggling, TransferEncodingWithContentLengthInEitherOrder) {
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nhello",
      error::transfer_encoding_with_content_length);
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nhello",
      error::transfer_encoding_with_content_length);
  // Even when the coding is not chunked (Beast alone would take the Content-Length).
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
                 error::transfer_encoding_with_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello",
                 error::transfer_encoding_with_content_length);
}

TEST(HttpParserSmuggling, TransferEncodingOnHttp10) {
  expect_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 error::transfer_encoding_on_http10);
}

TEST(HttpParserSmuggling, ObsoleteLineFolding) {
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", error::obs_fold);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nX-Folded:\r\n\tb\r\n\r\n", error::obs_fold);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
                 error::obs_fold);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789", error::obs_fold);
}

TEST(HttpParserSmuggling, MissingOrRepeatedHost) {
  expect_refused("GET / HTTP/1.1\r\n\r\n", error::missing_host);
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", error::duplicate_host);
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", error::duplicate_host);
  expect_refused("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", error::duplicate_host);
  // A second Host is refused as such even when one of them is malformed too.
  expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a b\r\n\r\n", error::duplicate_host);
}

// RFC 9112 3.2: a Host that is not uri-host [":" port] is answered 400, like a
// missing or repeated one (the conformance probe of issue #9 found these accepted).
TEST(HttpParserSmuggling, MalformedHost) {
  for (const char* host :
       {"a, b",   "a b",      "x/y",    "x:abc", "u@x",   "u:p@x", "x?y", "x#y",  "x\"y",  "[::1", "[]",
        "[::1]x", "[::1]:8o", "[g::1]", "[v1]",  "[v1.]", "x%",    "x%4", "x%zz", "a:1:2", "x\\y", "x\x80"}) {
    SCOPED_TRACE(host);
    expect_refused("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", error::bad_host);
    expect_refused("GET / HTTP/1.0\r\nHost: " + std::string(host) + "\r\n\r\n", error::bad_host);
  }
  // The first refused field counts: a bad Host before a bad field name, and after it.
  expect_refused("GET / HTTP/1.1\r\nHost: a b\r\nBad Name: x\r\n\r\n", error::bad_host);
  expect_refused("GET / HTTP/1.1\r\nBad Name: x\r\nHost: a b\r\n\r\n", error::bad_header);
}

TEST(HttpParser, WellFormedHosts) {
  for (const char* host :
       {"example.com", "example.com:8080", "EXAMPLE.com:", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080",
        "[2001:db8::7]", "[::ffff:192.0.2.1]:443", "[v1.fe80::a+en1]", "xn--caf-dma.example", "a_b-c~d.e",
        "%41bc", "!$&'()*+,;=", ""}) {
    SCOPED_TRACE(host);
    const std::string input = "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
    const ParseOutcome outcome = parse_every_way(input);
    ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
    EXPECT_EQ(outcome.requests[0].headers[0].second, host);
  }
  // Whitespace around the value is the field's, not the Host's.
  EXPECT_EQ(parse_every_way("GET / HTTP/1.1\r\nHost: \t h:1 \r\n\r\n").requests.size(), 1u);
}

// The same rule checks the authority of an absolute-form target.
TEST(HttpParserSmuggling, MalformedAuthorityInAbsoluteForm) {
  expect_refused("GET http://a b/ HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
  expect_refused("GET http://x:abc/ HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("GET http://u@x/ HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("GET http://[::1/ HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  EXPECT_EQ(parse_every_way("GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").requests.size(),
            1u);
}

// A byte that cannot start a method (a TLS ClientHello's 0x16, a NUL, a space) is
// refused at once, without waiting for a line end that a non-HTTP client never sends.
TEST(HttpParserSmuggling, FirstByteThatCannotStartARequest) {
  for (const std::string& start :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), std::string("\0GET", 4),
        std::string(" GET / HTTP/1.1"), std::string("\x80"), std::string("{\"a\":1}")}) {
    SCOPED_TRACE(::testing::PrintToString(start));
    expect_refused(start, error::bad_request_line);
  }
  // After a complete request, the next one's first byte likewise.
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\n\r\n\x16\x03\x01", error::bad_request_line, 1);
  // Empty lines before a request are still skipped (RFC 9112 2.2), and a lone CR waits.
  EXPECT_FALSE(parse_every_way("\r\n\r\n\r").failure.has_value());
}

TEST(HttpParserSmuggling, ContentLengthMustBeOnePlainNumber) {
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
                 error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                 error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                 error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                 error::bad_content_length);
  // No tab around framing values (llhttp refuses a trailing one; some proxies ignore the field).
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\t\r\n\r\nhello", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\t5\r\n\r\nhello", error::bad_content_length);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
  EXPECT_EQ(
      parse_every_way("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5  \r\n\r\nhello").requests.size(), 1u);
}

TEST(HttpParserSmuggling, BadCharactersInNamesValuesAndTargets) {
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nBad(Name): x\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n", error::bad_header);
  expect_refused(std::string_view("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 35), error::bad_header);
  expect_refused(
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
      "b\r\n\r\n",
      error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", error::bad_header);
  expect_refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", error::bad_header);
  expect_refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
  expect_refused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_target);
  expect_refused("G@T / HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
  expect_refused("GET / HTTP/1.1\nHost: h\n\n", error::bad_request_line);
  expect_refused("GET / HTTP/1.1\r\nHost: h\n\r\n", error::bad_header);
  expect_refused("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
}

TEST(HttpParserSmuggling, VersionsOtherThan10And11) {
  expect_refused("GET / HTTP/2.0\r\nHost: h\r\n\r\n", error::unsupported_version);
  expect_refused("GET / HTTP/0.9\r\n\r\n", error::unsupported_version);
  expect_refused("GET / HTTP/3.1\r\nHost: h\r\n\r\n", error::unsupported_version);
  expect_refused("GET / HTTP/1.10\r\nHost: h\r\n\r\n", error::bad_request_line);
  expect_refused("GET / HTXP/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
  expect_refused("GET / http/1.1\r\nHost: h\r\n\r\n", error::bad_request_line);
}

// RFC 9110 2.5: a higher minor version is processed as the highest we implement.
TEST(HttpParser, HigherMinorVersionIsProcessedAsHttp11) {
  for (const char* version : {"HTTP/1.2", "HTTP/1.9"}) {
    SCOPED_TRACE(version);
    const ParseOutcome outcome = parse_every_way(std::string("GET / ") + version +
                                                 "\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
    EXPECT_EQ(outcome.requests[0].version, 11);
    EXPECT_TRUE(outcome.requests[0].keep_alive);
  }
  // As HTTP/1.1, it needs a Host.
  expect_refused("GET / HTTP/1.2\r\n\r\n", error::missing_host);
}

TEST(HttpParserSmuggling, ChunkSizeOverflowAndBadChunks) {
  // 17 hex digits do not fit in 64 bits.
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1FFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
      error::bad_chunk);
  // 2^64-1 fits, and is far above the body limit.
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
      error::body_too_large);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
                 error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
                 error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
                 error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
                 error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n",
                 error::bad_chunk);
  // Chunk data not followed by CRLF, where what follows looks like a last chunk.
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nh\n0\r\nX: y\r\n\r\n",
                 error::bad_chunk);
  // An empty line where the first chunk-size line should be.
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\nP\r\n",
                 error::bad_chunk);
  // Whitespace in chunk lines (RFC "BWS") is refused, as llhttp does.
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
                 error::bad_chunk);
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\t;a=b\r\nabc\r\n0\r\n\r\n",
      error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3; a=b\r\nabc\r\n0\r\n\r\n",
                 error::bad_chunk);
  // A quoted extension that does not end on its line: Beast would wait (and count
  // the chunk against the body limit on every retry).
  expect_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6;q=\"a\r\n world\r\n0\r\n\r\n",
      error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0;q=\"a\r\nX: y\r\n\r\n",
                 error::bad_chunk);
  // Beast lets control bytes through quoted extension values.
  expect_refused(std::string_view("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "3;q=\"a\x11\0\"\r\nabc\r\n0\r\n\r\n",
                                  77),
                 error::bad_chunk);
  // A trailer section with a bare CR or LF is refused at once, not at the limit.
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n\rZ",
                 error::bad_chunk);
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\n",
                 error::bad_chunk);
}

TEST(HttpParserSmuggling, ConnectWithABody) {
  expect_refused("CONNECT h:443 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
                 error::bad_content_length);
  expect_refused("CONNECT h:443 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 error::bad_transfer_encoding);
}

TEST(HttpParserSmuggling, ConnectionCloseInTrailersCloses) {
  const auto outcome = parse_every_way(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\n"
      "GET /never HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
  EXPECT_FALSE(outcome.requests[0].keep_alive);
}

TEST(HttpParserSmuggling, RequestTargetForms) {
  for (const char* line : {"GET /path?q HTTP/1.1", "GET http://example.com/x HTTP/1.1", "OPTIONS * HTTP/1.1",
                           "CONNECT example.com:443 HTTP/1.1", "GET https://[::1]:8080/x HTTP/1.1"}) {
    std::string request = line;
    request += "\r\nHost: h\r\n\r\n";
    EXPECT_EQ(parse_every_way(request).requests.size(), 1u) << line;
  }
  for (const char* line :
       {"GET path HTTP/1.1", "GET ?q HTTP/1.1", "GET example.com HTTP/1.1", "GET urn:x HTTP/1.1",
        "GET http://a|b/ HTTP/1.1", "GET h2c://x/ HTTP/1.1", "GET /page#section HTTP/1.1",
        "GET http://exam#ple.com/ HTTP/1.1", "GET http://user@example.com/ HTTP/1.1",
        "CONNECT a\"b:1 HTTP/1.1", "GET 1http://x HTTP/1.1", "GET ** HTTP/1.1"}) {
    std::string request = line;
    request += "\r\nHost: h\r\n\r\n";
    expect_refused(request, error::bad_target);
  }
}

// --- limits: each one is an option; the defaults are checked in http_options_test ---

TEST(HttpParserLimits, HeaderBytes) {
  Options options;
  options.max_header_bytes = 200;
  const std::string fits = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(150, 'v') + "\r\n\r\n";
  EXPECT_EQ(parse_every_way(options, fits).requests.size(), 1u);
  const std::string over = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(200, 'v') + "\r\n\r\n";
  expect_refused(options, over, error::header_too_large);
  // Many small fields add up.
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 30; ++i) {
    many += 'X';
    many += std::to_string(i);
    many += ": v\r\n";
  }
  expect_refused(options, many + "\r\n", error::header_too_large);
}

TEST(HttpParserLimits, HeaderCount) {
  Options options;
  options.max_header_count = 5;
  std::string request = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 4; ++i) request += "X" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(parse_every_way(options, request + "\r\n").requests.size(), 1u);
  expect_refused(options, request + "One-Too-Many: v\r\n\r\n", error::too_many_headers);
}

TEST(HttpParserLimits, TargetLength) {
  Options options;
  options.max_target_length = 50;
  EXPECT_EQ(parse_every_way(options, "GET /" + std::string(49, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n")
                .requests.size(),
            1u);
  expect_refused(options, "GET /" + std::string(50, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
                 error::target_too_long);
  // A request line that never ends within the head limit is a target too long too.
  options.max_header_bytes = 100;
  options.max_target_length = 1000;
  expect_refused(options, "GET /" + std::string(150, 'a'), error::target_too_long);
  expect_refused(options, std::string(150, 'G'), error::bad_request_line);
}

TEST(HttpParserLimits, BodyBytes) {
  Options options;
  options.max_body_bytes = 10;
  EXPECT_EQ(parse_every_way(options, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
                .requests.size(),
            1u);
  expect_refused(options, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n0123456789a",
                 error::body_too_large);
  expect_refused(options,
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n6\r\n012345\r\n5\r\n01234\r\n0\r\n\r\n",
                 error::body_too_large);
  options.stream_body = true;
  expect_refused(options,
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n6\r\n012345\r\n5\r\n01234\r\n0\r\n\r\n",
                 error::body_too_large);
}

TEST(HttpParserLimits, ChunkExtensionLength) {
  Options options;
  options.max_chunk_extension_bytes = 20;
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(parse_every_way(options, head + "1;a=123456789012345\r\nx\r\n0\r\n\r\n").requests.size(), 1u);
  expect_refused(options, head + "1;a=1234567890123456789\r\nx\r\n0\r\n\r\n",
                 error::chunk_extension_too_long);
  // An extension that never ends is cut off once it cannot be within the limit.
  expect_refused(options, head + "1;a=" + std::string(200, 'b'), error::chunk_extension_too_long);
  expect_refused(options, head + "1" + std::string(200, '0'), error::bad_chunk);
}

TEST(HttpParserLimits, TrailerSection) {
  Options options;
  options.max_header_bytes = 100;
  options.max_header_count = 3;
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  EXPECT_EQ(parse_every_way(options, head + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n").requests.size(), 1u);
  expect_refused(options, head + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", error::trailers_too_large);
  // Anything else wrong in a trailer section is a malformed chunked body.
  expect_refused(options, head + "A: 1\r\n b\r\n\r\n", error::bad_chunk);
  expect_refused(options, head + "Content-Length: 1\r\n\r\n", error::bad_chunk);
  expect_refused(options, head + "A: " + std::string(150, 'v') + "\r\n\r\n", error::trailers_too_large);
}

TEST(HttpParser, ExpectOtherThanContinueIsRefused) {
  expect_refused("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n",
                 error::expectation_failed);
}

TEST(HttpParser, EveryRefusalHasItsStatus) {
  EXPECT_EQ(status_of(error::bad_transfer_encoding), 400u);
  EXPECT_EQ(status_of(error::unsupported_transfer_coding), 501u);
  EXPECT_EQ(status_of(error::body_too_large), 413u);
  EXPECT_EQ(status_of(error::target_too_long), 414u);
  EXPECT_EQ(status_of(error::header_too_large), 431u);
  EXPECT_EQ(status_of(error::too_many_headers), 431u);
  EXPECT_EQ(status_of(error::unsupported_version), 505u);
  EXPECT_EQ(status_of(error::expectation_failed), 417u);
  EXPECT_EQ(status_of(error::bad_host), 400u);
  EXPECT_NE(make_error_code(error::bad_host).message(), "unknown HTTP error");
  EXPECT_EQ(make_error_code(error::obs_fold).category().name(), std::string("multinode.http"));
}

}  // namespace
}  // namespace multinode::http::test

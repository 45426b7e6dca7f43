// Differential tests: the same bytes through our parser and through llhttp (Node's).
// Every disagreement must be one of the deliberate differences of docs/http.md;
// anything else fails. Inputs: hand-written cases, then mutations of valid
// requests (deterministic seeds), each also parsed cut at a random offset.
#include "http_llhttp_reference.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace multinode::http::test {
namespace {

std::string printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c > 0x7e) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string compare(std::string_view input) {
  const Options options;
  return explain_difference(options, input, parse_whole(options, input), llhttp_parse(input));
}

const char* const chunked_with_trailers =
    "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;n=v\r\nhello\r\n6\r\n world\r\n"
    "0\r\nX-T: 42\r\n\r\n";

const char* const close_in_trailers =
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\n"
    "GET /never HTTP/1.1\r\nHost: h\r\n\r\n";

TEST(HttpDifferential, AgreesOnOrdinaryRequests) {
  for (const char* input : {
           "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET /a?b=c HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n",
           "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.1\r\nHost: h\r\n\r\n",
           chunked_with_trailers,
           "GET / HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n",
           "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n",
           "HEAD / HTTP/1.1\r\nHost: h\r\n\r\nDELETE /x HTTP/1.1\r\nHost: h\r\n\r\nPURGE /y "
           "HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: "
           "h\r\n\r\n",
           "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
           close_in_trailers,
           "GET / z HTTP/1.1\r\nHost: h\r\n",  // both refuse the request line at once
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab",  // both wait for more
           "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",               // TLS: both refuse at once
           "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
       }) {
    EXPECT_EQ(compare(input), "") << printable(input);
  }
}

TEST(HttpDifferential, EachDocumentedDifferenceHappens) {
  const std::map<std::string, std::string> cases = {
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", difference::stricter},                 // obs-fold
      {"GET / HTTP/1.1\r\n\r\n", difference::stricter},                                          // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", difference::stricter},                    // two Hosts
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", difference::stricter},  // TE on 1.0
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       difference::stricter},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", difference::stricter},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
       difference::stricter},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
       difference::stricter},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nxGET / HTTP/1.1\r\nHost: h\r\n\r\n\n",
       difference::stricter},
      {"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", difference::stricter},
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", difference::stricter},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", difference::stricter},  // malformed Host
      {"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", difference::stricter},
      {"GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", difference::stricter},
      {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", difference::higher_minor_version},
      {"GET / HTTP/1.9\r\nHost: h\r\n", difference::higher_minor_version},  // llhttp refuses at once
      {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n", difference::stricter},
      {"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", difference::stricter},
      {"GET / HTTP/1.1 z", difference::refused_at_head_end},
      {"GET / HTTP/1.1\r\nHost: h\r\nX\"Y: z\r\n", difference::refused_at_head_end},
      {"FOO /x HTTP/1.1\r\nHost: h\r\n\r\n", difference::extension_method},
      {"get /x HTTP/1.1\r\nHost: h\r\n\r\n", difference::extension_method},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n", difference::tab_in_connection},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\t\r\n\r\n", difference::tab_in_connection},
      {"GET / HTTP/1.1\r\nHost: h\r\nProxy-Connection: close\t\r\n\r\n", difference::tab_in_connection},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b;c\r\nx\r\n0\r\n\r\n",
       difference::chunk_extensions},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b\\\"c\"\r\nx\r\n0\r\n\r\n",
       difference::quoted_pair_in_chunk_extension},
      {"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /next "
       "HTTP/1.1\r\nHost: h\r\n\r\n",
       difference::upgrade},
  };
  for (const auto& [input, label] : cases) EXPECT_EQ(compare(input), label) << printable(input);
}

// Mutations of valid requests: insertions, deletions and replacements of bytes that
// matter to HTTP framing, and whole framing lines dropped in.
TEST(HttpDifferential, MutatedRequestsOnlyDifferAsDocumented) {
  const std::vector<std::string> seeds = {
      "GET /a?b=c HTTP/1.1\r\nHost: h\r\nAccept: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.1\r\nHost: h\r\n\r\n",
      std::string(chunked_with_trailers) + "GET /z HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
      "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
  };
  const std::string alphabet = std::string("\r\n \t:;,0aF=\"\\/.HTPchunked-") + std::string("\0\x80\xff", 3);
  const char* lines[] = {"Transfer-Encoding: chunked\r\n",
                         "Content-Length: 3\r\n",
                         "Host: x\r\n",
                         "\r\n",
                         " ",
                         "\t",
                         "chunked",
                         "0\r\n\r\n",
                         "Connection: close\r\n",
                         "Expect: 100-continue\r\n",
                         "Transfer-Encoding: gzip\r\n",
                         "\r\n\r\n"};
  std::mt19937 random(20240611);
  std::map<std::string, int> seen;
  const Options options;
  constexpr int rounds = 30000;
  for (int round = 0; round < rounds; ++round) {
    std::string input = seeds[random() % seeds.size()];
    const int mutations = 1 + static_cast<int>(random() % 3);
    for (int m = 0; m < mutations; ++m) {
      const std::size_t at = random() % (input.size() + 1);
      switch (random() % 5) {
        case 0:
          input.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
        case 1:
          if (at < input.size()) input.erase(at, 1);
          break;
        case 2:
          if (at < input.size()) input[at] = alphabet[random() % alphabet.size()];
          break;
        case 3:
          input.insert(at, lines[random() % std::size(lines)]);
          break;
        default:
          if (at < input.size()) input.erase(at, 1 + random() % 8);
          break;
      }
    }
    const ParseOutcome ours = parse_whole(options, input);
    const std::string label = explain_difference(options, input, ours, llhttp_parse(input));
    ASSERT_FALSE(label.starts_with("UNDOCUMENTED")) << label << "\n"
                                                    << printable(input) << "\n"
                                                    << describe(ours);
    ++seen[label.empty() ? "agree" : label];
    // How the bytes arrive never matters.
    const std::size_t cut = random() % (input.size() + 1);
    const ParseOutcome split = parse_pieces(options, input, {cut});
    ASSERT_EQ(split, ours) << "cut at " << cut << ": " << printable(input);
  }
  for (const auto& [label, count] : seen) std::printf("%6d  %s\n", count, label.c_str());
  EXPECT_GT(seen["agree"], rounds / 10);  // the mutations do not all break the requests
}

}  // namespace
}  // namespace multinode::http::test

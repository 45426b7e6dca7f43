// Drives the HTTP server's RequestReader over one buffer N times, as a connection
// does (prepare, commit, next, finish_request), with no socket: the figure for
// the parser alone. Run under `valgrind --tool=callgrind` and compare the
// instruction counts of two N to get the instructions per request (docs/http.md).
//
//   http_parse hello|pipelined|chunked N
//     hello      the keep-alive request wrk sends in bench/http.sh
//     pipelined  16 of them in one buffer (bench/pipeline.lua)
//     chunked    a POST with a chunked body of four chunks and a trailer
#include <multinode/http.hpp>

#include "http/parser.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using multinode::http::Options;
using multinode::http::detail::ReadEvent;
using multinode::http::detail::RequestReader;

const std::string_view hello = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

std::string input_for(std::string_view mode) {
  if (mode == "hello") return std::string(hello);
  if (mode == "pipelined") {
    std::string batch;
    for (int i = 0; i < 16; ++i) batch += hello;
    return batch;
  }
  if (mode == "chunked") {
    return "POST /upload HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/octet-stream\r\n"
           "Transfer-Encoding: chunked\r\n\r\n"
           "10\r\n0123456789abcdef\r\n20;name=value\r\n0123456789abcdef0123456789abcdef\r\n"
           "8\r\n01234567\r\n4\r\nwxyz\r\n0\r\nX-Checksum: 42\r\n\r\n";
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string input = argc == 3 ? input_for(argv[1]) : std::string();
  if (input.empty()) {
    std::fprintf(stderr, "usage: http_parse hello|pipelined|chunked N\n");
    return 2;
  }
  const long rounds = std::atol(argv[2]);
  const Options options;
  RequestReader reader(options);
  std::size_t requests = 0;
  std::size_t checksum = 0;
  for (long round = 0; round < rounds; ++round) {
    auto room = reader.prepare();
    if (room.size() < input.size()) return 1;
    std::memcpy(room.data(), input.data(), input.size());
    reader.commit(input.size());
    for (;;) {
      const ReadEvent event = reader.next();
      if (event == ReadEvent::need_more) break;
      if (event == ReadEvent::failed) {
        std::fprintf(stderr, "refused: %s\n", make_error_code(reader.failure()).message().c_str());
        return 1;
      }
      if (event == ReadEvent::complete) {
        checksum += reader.request().target().size() + reader.request().body().size();
        ++requests;
        reader.finish_request();
      }
    }
  }
  std::printf("%zu requests, checksum %zu\n", requests, checksum);
  return 0;
}

// The HTTP server's limits and timeouts, each with a safe default (docs/http.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace multinode::http {

// Every limit on what a client sends has a safe default. Exceeding one answers
// with the status in brackets and closes the connection.
struct Options {
  // Request line plus header fields, in bytes [431; 414 while still in the request line].
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  // Header fields in one request, and separately trailer fields [431].
  std::size_t max_header_count = 100;
  // Length of the request-target [414].
  std::size_t max_target_length = std::size_t{8} * 1024;
  // Body bytes, after removing chunked framing [413].
  std::uint64_t max_body_bytes = std::uint64_t{1024} * 1024;
  // Chunk extensions of one chunk (`;name=value...`) [400].
  std::size_t max_chunk_extension_bytes = 256;

  // From the connection's start, or the first byte of a request, to the end of
  // its head: a client sending the head slowly (slowloris) is answered 408 and cut off.
  std::chrono::milliseconds header_timeout{10'000};
  // Longest gap between two reads of a body still incomplete [408 and close].
  std::chrono::milliseconds body_timeout{30'000};
  // A keep-alive connection waiting for its next request is closed after this.
  std::chrono::milliseconds idle_timeout{5'000};
  // Longest a response write may make no progress before the connection is closed.
  std::chrono::milliseconds write_timeout{30'000};
  // After an error response the server stops sending and reads (and drops) what the
  // client still sends for at most this long before closing, so that the client
  // reads the error instead of a reset.
  std::chrono::milliseconds linger_timeout{2'000};
  // During a graceful stop, a keep-alive connection between requests stays open this
  // long: a request the client is already sending is answered (with
  // `Connection: close`) instead of failing on a closed connection. One that stays
  // quiet is closed then. This is what makes a rolling restart lose no request.
  std::chrono::milliseconds stop_grace{1'000};

  // false: the handler runs once the whole request, body included, has been read.
  // true: the handler runs once the head has been read; the body comes through
  // Request::on_data and Request::on_end (uploads larger than memory should use this).
  bool stream_body = false;
  // First size of each connection's input buffer; it grows for larger requests
  // (up to what the limits above allow) and shrinks back when the connection is idle.
  std::size_t read_buffer_size = std::size_t{8} * 1024;
  // Response::write returns false once this much output is waiting to be sent.
  std::size_t write_high_water = std::size_t{64} * 1024;
};

}  // namespace multinode::http

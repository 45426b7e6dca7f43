// Shared by the ipc_* unit tests: socketpairs adopted as streams, and running an
// io_context until something happened. The time bound only keeps a broken test
// from hanging; no test asserts on time.
#pragma once

#include <multinode/stream.hpp>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <utility>

namespace multinode::test {

using namespace std::chrono_literals;

inline std::pair<int, int> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) ADD_FAILURE() << "socketpair failed";
  return {fds[0], fds[1]};
}

// Two connected streams in one process: `a` is node 1's end, `b` node 2's.
inline std::pair<Stream, Stream> stream_pair(boost::asio::io_context& io) {
  auto [x, y] = socket_pair();
  return {Stream::adopt(io, x, 2, 1), Stream::adopt(io, y, 1, 0)};
}

inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::seconds bound = 60s) {
  auto give_up = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(50ms);
  }
  return true;
}

// Runs every handler that is ready now, and those they make ready, without waiting.
inline void run_ready(boost::asio::io_context& io) {
  for (int i = 0; i < 100; ++i) {
    if (io.stopped()) io.restart();
    if (io.poll() == 0) break;
  }
}

inline std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(random() & 0xFF);
  return bytes;
}

// Waits for a forked child; true when it exited with status 0.
inline bool child_succeeded(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace multinode::test

// A foreign worker's stdout and stderr, relayed line by line to the master's own
// (docs/cli.md, "Output"): each line prefixed with the worker's id, slot and pid,
// or one JSON record per line; one write(2) per line, so lines never tear or
// merge; a line longer than the bound is cut and the pieces marked. A writer
// thread drains a bounded queue: a worker that floods its output, or a terminal
// that reads slowly, costs the master's loop neither time nor unbounded memory;
// what does not fit is dropped, counted, and said on stderr.
#pragma once

#include "supervisor/foreign.hpp"

#include <multinode/workers.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace multinode::detail {

class OutputSink {
 public:
  // max_queued: bytes of lines waiting to be written, at most. stop_grace: how long
  // the destructor waits for a blocked output to take what is queued.
  explicit OutputSink(std::size_t max_queued,
                      std::chrono::milliseconds stop_grace = std::chrono::milliseconds{2000});
  ~OutputSink();  // writes what is queued (within stop_grace), then ends the thread
  OutputSink(const OutputSink&) = delete;
  OutputSink& operator=(const OutputSink&) = delete;

  // fd: 1 or 2. The line must end with its newline. False when it was dropped.
  bool push(int fd, std::string line);
  std::uint64_t dropped() const;

 private:
  void drain();
  // Writes all of bytes unless the sink is closing and its grace is over (false then).
  bool write_out(int fd, std::string_view bytes);
  void tell_dropped(bool final);
  struct Pending {
    int fd;
    std::string line;
  };
  const std::size_t max_queued_;
  const std::chrono::milliseconds stop_grace_;
  int out_[3] = {-1, -1, -1};  // this sink's own descriptions of stdout and stderr
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_told_ = 0;
  std::chrono::steady_clock::time_point told_at_{};
  std::atomic<bool> done_{false};
  std::chrono::steady_clock::time_point done_at_{};
  std::thread writer_;
};

struct RelayFormat {
  bool json = false;
  std::size_t max_line = 16384;
};

// Reads one pipe until its end (every process holding its write end has closed
// it), then goes away by itself. read_fd is owned from now on.
void relay_output(boost::asio::io_context& io, int read_fd, bool is_stderr, const WorkerInfo& worker,
                  const RelayFormat& format, std::shared_ptr<OutputSink> sink);

// The line as written: "[worker 3 slot 1 pid 4250] text\n" ("... pid 4250 cut]" for a
// piece that continues on the next line), or its JSON record.
std::string format_output_line(const WorkerInfo& worker, bool is_stderr, const LineSplitter::Line& line,
                               bool json);

}  // namespace multinode::detail

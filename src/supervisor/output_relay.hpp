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

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace multinode::detail {

class OutputSink {
 public:
  // max_queued: bytes of lines waiting to be written, at most.
  explicit OutputSink(std::size_t max_queued);
  ~OutputSink();  // writes what is queued, then ends the thread
  OutputSink(const OutputSink&) = delete;
  OutputSink& operator=(const OutputSink&) = delete;

  // fd: 1 or 2. The line must end with its newline. False when it was dropped.
  bool push(int fd, std::string line);
  std::uint64_t dropped() const;

 private:
  void drain();
  struct Pending {
    int fd;
    std::string line;
  };
  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_untold_ = 0;
  bool done_ = false;
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

// Foreign workers' output, relayed to the master's (output_relay.hpp).
#include "supervisor/output_relay.hpp"

#include "common/log.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <vector>

namespace multinode::detail {
namespace {

void write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the output is gone (EPIPE): nothing else to do with the line
    done += static_cast<std::size_t>(n);
  }
}

class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(boost::asio::io_context& io, int fd, bool is_stderr, const WorkerInfo& worker,
        const RelayFormat& format, std::shared_ptr<OutputSink> sink)
      : pipe_(io, fd),
        is_stderr_(is_stderr),
        worker_(worker),
        format_(format),
        splitter_(format.max_line),
        sink_(std::move(sink)) {}

  void read() {
    // One read of at most buffer_ per turn of the loop: a flooding worker's pipe
    // takes its turn with the others' and with everything else the master does.
    pipe_.async_read_some(boost::asio::buffer(buffer_),
                          [self = shared_from_this()](boost::system::error_code error, std::size_t size) {
                            self->on_read(error, size);
                          });
  }

 private:
  void on_read(boost::system::error_code error, std::size_t size) {
    lines_.clear();
    if (size > 0) splitter_.feed(std::string_view(buffer_.data(), size), lines_);
    if (error) {
      if (auto last = splitter_.finish()) lines_.push_back(std::move(*last));
    }
    for (const auto& line : lines_)
      sink_->push(is_stderr_ ? 2 : 1, format_output_line(worker_, is_stderr_, line, format_.json));
    if (!error) read();
  }

  boost::asio::posix::stream_descriptor pipe_;
  bool is_stderr_;
  WorkerInfo worker_;
  RelayFormat format_;
  LineSplitter splitter_;
  std::shared_ptr<OutputSink> sink_;
  std::array<char, 65536> buffer_{};
  std::vector<LineSplitter::Line> lines_;
};

}  // namespace

OutputSink::OutputSink(std::size_t max_queued) : max_queued_(max_queued), writer_([this] { drain(); }) {}

OutputSink::~OutputSink() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

bool OutputSink::push(int fd, std::string line) {
  {
    std::lock_guard lock(mutex_);
    if (queued_bytes_ + line.size() > max_queued_) {
      ++dropped_;
      ++dropped_untold_;
      return false;
    }
    queued_bytes_ += line.size();
    queue_.push_back({fd, std::move(line)});
  }
  wake_.notify_one();
  return true;
}

std::uint64_t OutputSink::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void OutputSink::drain() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return done_ || !queue_.empty() || dropped_untold_ > 0; });
    if (queue_.empty()) {
      if (dropped_untold_ > 0) {
        const std::uint64_t count = dropped_untold_;
        const std::uint64_t total = dropped_;
        dropped_untold_ = 0;
        lock.unlock();
        log(LogLevel::warning, count, " line(s) of worker output dropped (", total,
            " in all): the workers wrote faster than the output was read; the queue holds ", max_queued_,
            " bytes");
        lock.lock();
        continue;
      }
      if (done_) return;
      continue;
    }
    Pending next = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= next.line.size();
    lock.unlock();
    write_all(next.fd, next.line);
    lock.lock();
  }
}

std::string format_output_line(const WorkerInfo& worker, bool is_stderr, const LineSplitter::Line& line,
                               bool json) {
  if (json) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    // The library's own record, with the worker's identity, and the stream and line.
    std::string record = json_log_line(now, is_stderr ? LogLevel::warning : LogLevel::info, false, worker.id,
                                       worker.slot, worker.pid, line.text);
    // {"time":...,"message":"..."}\n -> {..., "stream":"stdout","continues":true}\n
    record.resize(record.size() - 2);
    record += std::string(",\"stream\":") + (is_stderr ? "\"stderr\"" : "\"stdout\"");
    if (line.continues) record += ",\"continues\":true";
    record += "}\n";
    return record;
  }
  std::string text = "[worker " + std::to_string(worker.id) + " slot " + std::to_string(worker.slot) +
                     " pid " + std::to_string(worker.pid) + (line.continues ? " cut] " : "] ");
  text += line.text;
  text += '\n';
  return text;
}

void relay_output(boost::asio::io_context& io, int read_fd, bool is_stderr, const WorkerInfo& worker,
                  const RelayFormat& format, std::shared_ptr<OutputSink> sink) {
  std::make_shared<Relay>(io, read_fd, is_stderr, worker, format, std::move(sink))->read();
}

}  // namespace multinode::detail

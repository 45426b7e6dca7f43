// Foreign workers' output, relayed to the master's (output_relay.hpp).
#include "supervisor/output_relay.hpp"

#include "common/log.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <vector>

namespace multinode::detail {
namespace {

// This process's own open file description of stdout or stderr, non-blocking when
// it is a pipe or a terminal (opened anew through /proc, so the O_NONBLOCK is not
// the shell's or another process's). A regular file shares the original's offset
// (a dup), so that lines the master writes to the same file never overwrite these;
// its writes do not block for long.
int own_output(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return -1;
  if (S_ISFIFO(info.st_mode) || S_ISCHR(info.st_mode)) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const int own = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (own >= 0) return own;
  }
  return ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
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

OutputSink::OutputSink(std::size_t max_queued, std::chrono::milliseconds stop_grace)
    : max_queued_(max_queued), stop_grace_(stop_grace) {
  out_[1] = own_output(1);
  out_[2] = own_output(2);
  writer_ = std::thread([this] { drain(); });
}

OutputSink::~OutputSink() {
  {
    std::lock_guard lock(mutex_);
    done_at_ = std::chrono::steady_clock::now();
    done_ = true;
  }
  wake_.notify_one();
  writer_.join();
  for (const int fd : out_) {
    if (fd >= 0) ::close(fd);
  }
}

bool OutputSink::push(int fd, std::string line) {
  {
    std::lock_guard lock(mutex_);
    if (queued_bytes_ + line.size() > max_queued_) {
      ++dropped_;
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

bool OutputSink::write_out(int fd, std::string_view bytes) {
  const int out = out_[fd == 2 ? 2 : 1];
  if (out < 0) return true;  // no such output: nothing to wait for
  while (!bytes.empty()) {
    const ssize_t n = ::write(out, bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // Blocked: wait in slices, so that a closing sink gives up after its grace.
      if (done_ && std::chrono::steady_clock::now() - done_at_ > stop_grace_) return false;
      {
        std::lock_guard lock(mutex_);
        tell_dropped(false);  // the flood goes on meanwhile: said while waiting, too
      }
      pollfd wait{out, POLLOUT, 0};
      ::poll(&wait, 1, 100);
      continue;
    }
    return true;  // the output is gone (EPIPE, EIO): nothing else to do with the line
  }
  return true;
}

void OutputSink::tell_dropped(bool final) {
  // Called with mutex_ held; says how many lines were lost since it last said so,
  // at most once a second (and once more at the end).
  const auto now = std::chrono::steady_clock::now();
  if (dropped_ == dropped_told_ || (!final && now - told_at_ < std::chrono::seconds{1})) return;
  const std::uint64_t count = dropped_ - dropped_told_;
  dropped_told_ = dropped_;
  told_at_ = now;
  log(LogLevel::warning, count, " line(s) of worker output dropped (", dropped_,
      " in all): the workers wrote faster than stdout/stderr took it; at most ", max_queued_,
      " bytes are held");
}

void OutputSink::drain() {
  std::unique_lock lock(mutex_);
  bool gave_up = false;
  for (;;) {
    wake_.wait_for(lock, std::chrono::seconds{1}, [this] { return done_ || !queue_.empty(); });
    tell_dropped(false);
    if (queue_.empty()) {
      if (done_) break;
      continue;
    }
    Pending next = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= next.line.size();
    if (gave_up) {
      ++dropped_;
      continue;
    }
    lock.unlock();
    const bool written = write_out(next.fd, next.line);
    lock.lock();
    if (!written) {
      gave_up = true;  // closing, and the output takes nothing: the rest is dropped
      ++dropped_;
    }
  }
  tell_dropped(true);
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

// The mesh stream: its lifecycle, the read loop that feeds on_data or the
// framer, the write queue and its flushes, async_read_some's waiting, and the
// service that drops every stream of an io_context that goes away.
#include "ipc/stream_state.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace multinode {
namespace detail {

// Knows every live stream of one io_context, so that destroying the
// io_context closes them and drops their handlers. Handlers often hold handles
// to their own stream; without this such a stream would never be freed, and a
// handle kept past the io_context would refer to a dead reactor.
class StreamService final : public boost::asio::execution_context::service {
 public:
  static boost::asio::execution_context::id id;

  explicit StreamService(boost::asio::execution_context& context) : service(context) {}

  void add(StreamState& stream) noexcept {
    stream.service_ = this;
    streams_.push_front(stream);
  }
  void remove(StreamState& stream) noexcept { streams_.erase(stream); }

 private:
  // Runs before the reactor's own shutdown: this service is created after the
  // first socket, and services shut down newest first. (The name is Asio's.)
  void shutdown() override {
    while (!streams_.empty()) {
      StreamState& stream = *streams_.front();
      streams_.erase(stream);
      stream.destroy_io_objects();  // may free other streams, which unlink themselves
    }
  }

  IntrusiveList<StreamState, &StreamState::service_hook_> streams_;
};

boost::asio::execution_context::id StreamService::id;

StreamState::StreamState(boost::asio::io_context& io, NodeId peer, unsigned peer_slot)
    : io_(io), peer_(peer), peer_slot_(peer_slot) {}

StreamState::~StreamState() {
  // Unlinked already when the service went first (the io_context is gone).
  if (service_hook_.linked()) service_->remove(*this);
}

std::error_code StreamState::assign(int fd) {
  socket_.emplace(io_);
  boost::system::error_code error;
  socket_->assign(boost::asio::local::stream_protocol(), fd, error);
  if (error) {
    socket_.reset();
    return error;
  }
  fd_ = fd;
  return {};
}

void StreamState::start() {
  boost::asio::use_service<StreamService>(io_).add(*this);
  watch_hangup();
}

void StreamState::destroy_io_objects() noexcept {
  // The handlers dropped below may hold the last handles to this stream.
  auto self = weak_from_this().lock();
  phase_ = Phase::io_objects_destroyed;
  socket_.reset();
  fd_ = -1;
  on_data_.clear();
  on_end_.clear();
  on_close_.clear();
  on_drain_.clear();
  if (framer_) framer_->destroy_io_objects();
}

// ---------------------------------------------------------------- closing

bool StreamState::can_read() const noexcept {
  return open_for_reading() && !read_eof_ && wants_data();
}

void StreamState::close_with(std::error_code code) {
  if (is_closed()) return;
  phase_ = Phase::closed;
  close_code_ = code;
  boost::system::error_code ignored;
  if (socket_) socket_->close(ignored);  // cancels the pending waits
  fd_ = -1;
  out_.truncate(0);
  out_.free_memory_if_larger(0);
  // Events come from the event loop, never from inside the call that caused them.
  boost::asio::post(io_, [self = shared_from_this(), code] { self->notify_closed(code); });
}

void StreamState::notify_closed(std::error_code code) {
  if (io_objects_destroyed()) return;
  phase_ = Phase::close_reported;
  in_.truncate(0);
  in_.free_memory_if_larger(0);
  if (framer_) framer_->stream_closed(code);
  on_close_(code);
  // Handlers often hold handles to this stream: dropping them frees it.
  on_data_.clear();
  on_end_.clear();
  on_drain_.clear();
  on_close_.clear();
}

void StreamState::set_close_handler(Callback<void(std::error_code)>& slot,
                                    std::function<void(std::error_code)> handler) {
  if (io_objects_destroyed()) return;
  if (phase_ == Phase::close_reported) {
    // Too late for the event itself: still tell the handler, from the event loop.
    if (handler)
      boost::asio::post(io_, [handler = std::move(handler), code = close_code_] { handler(code); });
    return;
  }
  slot.set(std::move(handler));
}

void StreamState::set_on_end(std::function<void()> handler) {
  if (!io_objects_destroyed()) on_end_.set(std::move(handler));
}

void StreamState::set_on_drain(std::function<void()> handler) {
  if (!io_objects_destroyed()) on_drain_.set(std::move(handler));
}

void StreamState::close_when_flushed(std::error_code code) {
  if (!open_for_reading()) return;  // closed, or closing already
  phase_ = Phase::closing;
  close_code_ = code;
  schedule_flush();
}

void StreamState::fail(int error) {
  // On a socketpair these mean the peer closed its end or died.
  if (error == EPIPE || error == ECONNRESET || error == ENOTCONN)
    close_with(errc::peer_gone);
  else
    close_with(std::error_code(error, std::system_category()));
}

void StreamState::watch_hangup() {
  // A stream nobody reads must still notice its peer dying. EPOLLHUP comes only
  // when the peer's end is gone entirely; then, if nothing is left unread, the
  // stream can end without losing data. Otherwise the data waits for a reader,
  // which then sees the end itself.
  socket_->async_wait(boost::asio::socket_base::wait_error,
                      [self = shared_from_this()](const boost::system::error_code& error) {
                        if (error || !self->open_for_reading() || self->read_eof_) return;
                        if (self->read_pending_ || self->read_mode_ == ReadMode::async_read) return;
                        int unread = 0;
                        if (::ioctl(self->fd_, FIONREAD, &unread) == 0 && unread == 0 && self->in_.empty()) {
                          self->handle_eof();
                        }
                      });
}

// ---------------------------------------------------------------- reading

bool StreamState::wants_data() const noexcept {
  switch (read_mode_) {
    case ReadMode::data:
      return bool(on_data_);
    case ReadMode::framed:
      return framer_->wants_data();
    default:
      return false;
  }
}

void StreamState::set_on_data(std::function<void(std::string_view)> handler) {
  if (read_mode_ == ReadMode::framed)
    throw std::logic_error("multinode::Stream::on_data: the stream is framed");
  if (read_mode_ == ReadMode::async_read) {
    throw std::logic_error("multinode::Stream::on_data: the stream is read with async_read_some");
  }
  if (is_closed()) return;
  read_mode_ = ReadMode::data;
  on_data_.set(std::move(handler));
  reading_changed();
}

void StreamState::set_framer(std::shared_ptr<StreamReader> framer) {
  if (read_mode_ == ReadMode::data)
    throw std::logic_error("multinode::frame_stream: the stream has on_data set");
  if (read_mode_ == ReadMode::async_read) {
    throw std::logic_error("multinode::frame_stream: the stream is read with async_read_some");
  }
  read_mode_ = ReadMode::framed;
  framer_ = std::move(framer);
}

void StreamState::claim_async_reader() {
  if (read_mode_ == ReadMode::data)
    throw std::logic_error("multinode::Stream::async_read_some: on_data is set");
  if (read_mode_ == ReadMode::framed)
    throw std::logic_error("multinode::Stream::async_read_some: the stream is framed");
  read_mode_ = ReadMode::async_read;
}

void StreamState::set_busy_poll(std::chrono::microseconds window) noexcept {
  busy_poll_ = std::max(window, std::chrono::microseconds(0));
}

void StreamState::reading_changed() {
  if (!read_pending_ && can_read()) post_read_pass();
}

void StreamState::post_read_pass() {
  read_pending_ = true;
  boost::asio::post(io_, [self = shared_from_this()] { self->read_pass(); });
}

void StreamState::wait_readable() {
  if (busy_poll_.count() != 0) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_data_ < busy_poll_ && now >= busy_poll_paused_until_) {
      // On a machine with CPUs to spare, waking a process that sleeps in epoll
      // costs tens of microseconds; one that polls answers within one or two.
      // On a busy machine it is the other way round: a process that never sleeps
      // loses the scheduler's preference for tasks that were woken, and waits for
      // its turn. A long gap between two polls shows that; then sleep for a while.
      if (polling_ && now - last_poll_ > busy_poll_preempted) {
        busy_poll_paused_until_ = now + busy_poll_pause;
      } else {
        polling_ = true;
        last_poll_ = now;
        post_read_pass();  // polls again after whatever else is ready: the loop keeps running
        return;
      }
    }
    polling_ = false;
  }
  read_pending_ = true;
  socket_->async_wait(boost::asio::socket_base::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& error) {
                        self->read_pending_ = false;
                        if (!error) self->read_pass();
                      });
}

void StreamState::read_pass() {
  read_pending_ = false;
  if (!can_read()) return;
  // A handler may drop every handle to this stream.
  auto self = shared_from_this();
  // Replies the handlers write to this stream go out when the pass ends, in one
  // send, without a trip through the event loop: that trip costs a request and
  // its reply an extra epoll_wait.
  in_read_pass_ = true;
  try {
    read_some_rounds();
  } catch (...) {
    in_read_pass_ = false;
    if (flush_ == Flush::after_read_pass) {
      flush_ = Flush::idle;
      schedule_flush();
    }
    throw;
  }
  in_read_pass_ = false;
  if (flush_ == Flush::after_read_pass) flush();
}

void StreamState::read_some_rounds() {
  try {
    // What an earlier pass left behind because the reader paused.
    bool complete = read_mode_ == ReadMode::data || in_.size() >= framer_->bytes_needed();
    if (!in_.empty() && complete) {
      deliver();
      if (!can_read()) return;
    }
    for (int round = 0; round < read_rounds_per_pass; ++round) {
      std::size_t needed = read_mode_ == ReadMode::framed ? framer_->bytes_needed() : 0;
      std::size_t missing = needed > in_.size() ? needed - in_.size() : 0;
      char* tail = in_.prepare(std::max(missing, min_read_room));
      std::size_t room = in_.tail_room();
      ssize_t n = ::recv(fd_, tail, room, MSG_DONTWAIT);
      if (n > 0) {
        in_.commit(static_cast<std::size_t>(n));
        if (busy_poll_.count() != 0) last_data_ = std::chrono::steady_clock::now();
        deliver();
        if (!can_read()) return;
        // A short read emptied the socket: waiting now cannot miss an edge.
        if (static_cast<std::size_t>(n) < room) {
          wait_readable();
          return;
        }
        continue;
      }
      if (n == 0) {
        handle_eof();
        return;
      }
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        wait_readable();
        return;
      }
      fail(error);
      return;
    }
    // A stream that always has data lets the rest of the process run in between.
    post_read_pass();
  } catch (...) {
    // A handler threw: it propagates out of io_context::run(), and reading goes on
    // if the application runs the loop again.
    if (!read_pending_ && can_read()) post_read_pass();
    throw;
  }
}

void StreamState::deliver() {
  if (read_mode_ == ReadMode::data) {
    std::string_view chunk(in_.data(), in_.size());
    in_.consume(chunk.size());
    on_data_(chunk);
  } else {
    framer_->read(in_);
  }
  if (in_.empty()) in_.free_memory_if_larger(read_buffer_keep);
}

void StreamState::handle_eof() {
  read_eof_ = true;
  auto self = shared_from_this();
  on_end_();
  // As Node's sockets with allowHalfOpen off: once the peer stops sending, what
  // is queued still goes out, then the stream closes.
  if (!open_for_reading()) return;  // closed, or already closing
  if (out_.empty() || write_shut_) {
    close_with(errc::peer_gone);
  } else {
    phase_ = Phase::closing;
    close_code_ = errc::peer_gone;
    schedule_flush();
  }
}

ReadProgress StreamState::read_some_now(boost::asio::mutable_buffer buffer, std::size_t& n,
                                        boost::system::error_code& error) {
  n = 0;
  error.clear();
  if (io_objects_destroyed()) return ReadProgress::io_objects_destroyed;
  if (!in_.empty()) {
    n = std::min(buffer.size(), in_.size());
    std::memcpy(buffer.data(), in_.data(), n);
    in_.consume(n);
    return ReadProgress::done;
  }
  // As Asio's stream sockets: an empty buffer completes at once, without error.
  if (buffer.size() == 0) return ReadProgress::done;
  if (!open_for_reading() || read_eof_) {
    error = boost::asio::error::eof;
    return ReadProgress::done;
  }
  for (;;) {
    ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got > 0) {
      n = static_cast<std::size_t>(got);
      return ReadProgress::done;
    }
    if (got == 0) {
      handle_eof();
      error = boost::asio::error::eof;
      return ReadProgress::done;
    }
    int failure = errno;
    if (failure == EINTR) continue;
    if (failure == EAGAIN || failure == EWOULDBLOCK) return ReadProgress::wait;
    // The stream closes (on_close hears why); for the reader no more data will come.
    fail(failure);
    error = boost::asio::error::eof;
    return ReadProgress::done;
  }
}

void StreamState::read_when_ready(std::unique_ptr<ReadWaiter> waiter) {
  // Completes on readiness and on cancellation (close) alike: the next
  // read_some_now tells which. Destroying the io_context destroys the wait, and
  // the waiter with it, without completing it.
  socket_->async_wait(
      boost::asio::socket_base::wait_read,
      [self = shared_from_this(), waiter = std::move(waiter)](const boost::system::error_code&) mutable {
        std::size_t n = 0;
        boost::system::error_code error;
        switch (self->read_some_now(waiter->buffer(), n, error)) {
          case ReadProgress::done:
            waiter->complete(error, n);
            return;
          case ReadProgress::wait:
            self->read_when_ready(std::move(waiter));
            return;
          case ReadProgress::io_objects_destroyed:
            return;
        }
      });
}

// ---------------------------------------------------------------- writing

bool StreamState::write(const char* bytes, std::size_t size) {
  if (!writable()) return false;
  out_.append(bytes, size);
  return queued();
}

bool StreamState::queued() {
  schedule_flush();
  if (out_.size() >= high_water_mark_) {
    need_drain_ = true;
    return false;
  }
  return true;
}

void StreamState::set_high_water_mark(std::size_t bytes) noexcept {
  high_water_mark_ = std::max<std::size_t>(bytes, 1);
}

void StreamState::schedule_flush() {
  // Everything written before the event loop next runs goes out in one send.
  if (flush_ != Flush::idle || is_closed()) return;
  if (in_read_pass_) {
    flush_ = Flush::after_read_pass;
    return;
  }
  flush_ = Flush::posted;
  boost::asio::post(io_, [self = shared_from_this()] { self->flush(); });
}

void StreamState::flush() {
  // Called for the one pending flush (posted, after a read pass, or writable).
  flush_ = Flush::idle;
  if (is_closed()) return;
  auto self = shared_from_this();
  while (!out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      bool all = static_cast<std::size_t>(n) == out_.size();
      out_.consume(static_cast<std::size_t>(n));
      if (!all) break;  // the socket buffer is full
      continue;
    }
    int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) break;
    fail(error);
    return;
  }
  if (!out_.empty()) {
    flush_ = Flush::waiting_writable;
    socket_->async_wait(boost::asio::socket_base::wait_write, [self](const boost::system::error_code& error) {
      self->flush_ = Flush::idle;
      if (!error) self->flush();
    });
  } else {
    out_.free_memory_if_larger(2 * high_water_mark_);
    if (phase_ == Phase::closing) {
      close_with(close_code_);
      return;
    }
    if (phase_ == Phase::ending && !write_shut_) {
      ::shutdown(fd_, SHUT_WR);
      write_shut_ = true;
      if (read_eof_) {
        close_with(errc::peer_gone);
        return;
      }
    }
  }
  maybe_drain();
}

void StreamState::flush_once() noexcept {
  if (is_closed() || out_.empty()) return;
  ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) out_.consume(static_cast<std::size_t>(n));
}

void StreamState::maybe_drain() {
  if (!need_drain_ || !open_for_reading() || out_.size() >= high_water_mark_) return;
  need_drain_ = false;
  if (framer_) framer_->stream_drained();
  on_drain_();
}

void StreamState::end() {
  if (phase_ != Phase::open) return;
  phase_ = Phase::ending;
  schedule_flush();
}

}  // namespace detail

// ---------------------------------------------------------------- Stream

Stream Stream::adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot,
                     std::error_code& error) {
  error.clear();
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    error = std::error_code(errno, std::system_category());  // ENOTSOCK, EBADF
  } else if (type != SOCK_STREAM) {
    error = std::make_error_code(std::errc::wrong_protocol_type);
  }
  if (error) {
    ::close(fd);
    return Stream();
  }
  // A copy of this fd in a process started later would keep the stream from
  // ending when this process dies (the original multi-node's fault).
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  std::shared_ptr<detail::StreamState> state;
  try {
    state = std::make_shared<detail::StreamState>(io, peer, peer_slot);
  } catch (...) {
    ::close(fd);  // out of memory: the one failure left to an exception
    throw;
  }
  if ((error = state->assign(fd))) {  // the io_context cannot watch it
    ::close(fd);
    return Stream();
  }
  state->start();
  return Stream(std::move(state));
}

Stream Stream::adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot) {
  std::error_code error;
  Stream stream = adopt(io, fd, peer, peer_slot, error);
  if (error) throw std::system_error(error, "multinode::Stream::adopt");
  return stream;
}

Stream::executor_type Stream::get_executor() const {
  if (!state_) throw std::invalid_argument("multinode::Stream::get_executor: empty stream");
  return state_->executor();
}

NodeId Stream::peer_id() const noexcept {
  return state_ ? state_->peer() : 0;
}
unsigned Stream::peer_slot() const noexcept {
  return state_ ? state_->peer_slot() : 0;
}
bool Stream::is_open() const noexcept {
  return state_ && state_->writable();
}

bool Stream::write(std::string_view bytes) {
  return state_ && state_->write(bytes.data(), bytes.size());
}
bool Stream::write(boost::asio::const_buffer bytes) {
  return state_ && state_->write(static_cast<const char*>(bytes.data()), bytes.size());
}
std::size_t Stream::buffered() const noexcept {
  return state_ ? state_->buffered() : 0;
}
std::size_t Stream::high_water_mark() const noexcept {
  return state_ ? state_->high_water_mark() : 0;
}
void Stream::set_high_water_mark(std::size_t bytes) {
  if (state_) state_->set_high_water_mark(bytes);
}
void Stream::end() {
  if (state_) state_->end();
}
void Stream::close() {
  if (state_) state_->close_with(errc::stream_closed);
}
void Stream::close_when_flushed() {
  if (state_) state_->close_when_flushed(errc::stream_closed);
}

void Stream::on_data(std::function<void(std::string_view)> handler) {
  if (state_) state_->set_on_data(std::move(handler));
}
void Stream::on_end(std::function<void()> handler) {
  if (state_) state_->set_on_end(std::move(handler));
}
void Stream::on_close(std::function<void(std::error_code)> handler) {
  if (state_) state_->set_on_close(std::move(handler));
}
void Stream::on_drain(std::function<void()> handler) {
  if (state_) state_->set_on_drain(std::move(handler));
}
void Stream::set_busy_poll(std::chrono::microseconds window) {
  if (state_) state_->set_busy_poll(window);
}

void Stream::claim_async_reader() {
  if (!state_) throw std::invalid_argument("multinode::Stream::async_read_some: empty stream");
  state_->claim_async_reader();
}

detail::ReadProgress Stream::read_some_now(boost::asio::mutable_buffer buffer, std::size_t& n,
                                           boost::system::error_code& error) {
  return state_->read_some_now(buffer, n, error);
}

void Stream::read_when_ready(std::unique_ptr<detail::ReadWaiter> waiter) {
  state_->read_when_ready(std::move(waiter));
}

}  // namespace multinode

#include "ipc/stream_state.hpp"

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
    stream.service_prev_ = nullptr;
    stream.service_next_ = head_;
    if (head_) head_->service_prev_ = &stream;
    head_ = &stream;
  }

  void remove(StreamState& stream) noexcept {
    if (stream.service_prev_)
      stream.service_prev_->service_next_ = stream.service_next_;
    else
      head_ = stream.service_next_;
    if (stream.service_next_) stream.service_next_->service_prev_ = stream.service_prev_;
    stream.service_ = nullptr;
    stream.service_prev_ = stream.service_next_ = nullptr;
  }

 private:
  // Runs before the reactor's own shutdown: this service is created after the
  // first socket, and services shut down newest first.
  void shutdown() override {
    while (head_) {
      StreamState& stream = *head_;
      remove(stream);
      stream.shut_down();  // may free other streams, which remove themselves
    }
  }

  StreamState* head_ = nullptr;
};

boost::asio::execution_context::id StreamService::id;

StreamState::StreamState(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot)
    : io_(io), fd_(fd), peer_(peer), peer_slot_(peer_slot) {
  socket_.emplace(io);
  socket_->assign(boost::asio::local::stream_protocol(), fd);
}

StreamState::~StreamState() {
  if (service_) service_->remove(*this);
}

void StreamState::start() {
  boost::asio::use_service<StreamService>(io_).add(*this);
  watch_hangup();
}

void StreamState::shut_down() noexcept {
  // The handlers dropped below may hold the last handles to this stream.
  auto self = weak_from_this().lock();
  shut_down_ = true;
  closed_ = true;
  socket_.reset();
  fd_ = -1;
  on_data_.clear();
  on_end_.clear();
  on_close_.clear();
  on_drain_.clear();
  if (framer_) framer_->stream_shut_down();
}

// ---------------------------------------------------------------- closing

bool StreamState::can_read() const noexcept {
  return !closed_ && !closing_ && !read_eof_ && wants_data();
}

void StreamState::close_with(std::error_code code) {
  if (closed_) return;
  closed_ = true;
  closing_ = false;
  close_code_ = code;
  boost::system::error_code ignored;
  if (socket_) socket_->close(ignored);  // cancels the pending waits
  fd_ = -1;
  out_.truncate(0);
  out_.release_if_larger(0);
  if (shut_down_) return;
  // Events come from the event loop, never from inside the call that caused them.
  boost::asio::post(io_, [self = shared_from_this(), code] { self->notify_closed(code); });
}

void StreamState::notify_closed(std::error_code code) {
  if (shut_down_) return;
  close_notified_ = true;
  in_.truncate(0);
  in_.release_if_larger(0);
  if (framer_) framer_->stream_closed(code);
  on_close_(code);
  // Handlers often hold handles to this stream: dropping them frees it.
  on_data_.clear();
  on_end_.clear();
  on_drain_.clear();
  on_close_.clear();
}

void StreamState::set_on_close(std::function<void(std::error_code)> handler) {
  if (shut_down_) return;
  if (close_notified_) {
    // Too late for the event itself: still tell the handler, from the event loop.
    if (handler)
      boost::asio::post(io_, [handler = std::move(handler), code = close_code_] { handler(code); });
    return;
  }
  on_close_.set(std::move(handler));
}

void StreamState::close_after_flush(std::error_code code) {
  if (closed_ || closing_) return;
  closing_ = true;
  closing_code_ = code;
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
                        if (error || self->closed_ || self->closing_ || self->read_eof_) return;
                        if (self->read_pending_ || self->read_mode_ == ReadMode::coroutine) return;
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
  if (read_mode_ == ReadMode::coroutine) {
    throw std::logic_error("multinode::Stream::on_data: the stream is read with async_read_some");
  }
  if (closed_) return;
  read_mode_ = ReadMode::data;
  on_data_.set(std::move(handler));
  reading_changed();
}

void StreamState::set_framer(StreamReader* framer) {
  if (read_mode_ == ReadMode::data)
    throw std::logic_error("multinode::frame_stream: the stream has on_data set");
  if (read_mode_ == ReadMode::coroutine) {
    throw std::logic_error("multinode::frame_stream: the stream is read with async_read_some");
  }
  read_mode_ = ReadMode::framed;
  framer_ = framer;
}

void StreamState::claim_coroutine_reader() {
  if (read_mode_ == ReadMode::data)
    throw std::logic_error("multinode::Stream::async_read_some: on_data is set");
  if (read_mode_ == ReadMode::framed)
    throw std::logic_error("multinode::Stream::async_read_some: the stream is framed");
  read_mode_ = ReadMode::coroutine;
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
    if (std::exchange(flush_after_pass_, false)) schedule_flush();
    throw;
  }
  in_read_pass_ = false;
  if (std::exchange(flush_after_pass_, false)) flush();
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
  if (in_.empty()) in_.release_if_larger(read_buffer_keep);
}

void StreamState::handle_eof() {
  read_eof_ = true;
  auto self = shared_from_this();
  on_end_();
  if (closed_) return;
  // As Node's sockets with allowHalfOpen off: once the peer stops sending, what
  // is queued still goes out, then the stream closes.
  if (closing_) return;
  if (out_.empty() || write_shut_) {
    close_with(errc::peer_gone);
  } else {
    closing_ = true;
    closing_code_ = errc::peer_gone;
    schedule_flush();
  }
}

bool StreamState::try_read_some(boost::asio::mutable_buffer buffer, std::size_t& n) {
  n = 0;
  if (!in_.empty()) {
    n = std::min(buffer.size(), in_.size());
    std::memcpy(buffer.data(), in_.data(), n);
    in_.consume(n);
    return true;
  }
  if (closed_ || closing_ || read_eof_ || buffer.size() == 0) return true;
  for (;;) {
    ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got > 0) {
      n = static_cast<std::size_t>(got);
      return true;
    }
    if (got == 0) {
      handle_eof();
      return true;
    }
    int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return false;
    fail(error);
    return true;
  }
}

void StreamState::wait_readable_for(std::unique_ptr<ReadWaiter> waiter) {
  if (!socket_) {
    // The io_context is gone: there is nothing to wait with. Completing reads 0.
    waiter->complete();
    return;
  }
  // Completes on readiness and on cancellation (close) alike: the next
  // try_read_some tells which.
  socket_->async_wait(boost::asio::socket_base::wait_read,
                      [self = shared_from_this(),
                       waiter = std::move(waiter)](const boost::system::error_code&) { waiter->complete(); });
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

void StreamState::schedule_flush() {
  // Everything written before the event loop next runs goes out in one send.
  if (flush_posted_ || write_waiting_ || closed_ || shut_down_) return;
  if (in_read_pass_) {
    flush_after_pass_ = true;
    return;
  }
  flush_posted_ = true;
  boost::asio::post(io_, [self = shared_from_this()] { self->flush(); });
}

void StreamState::flush() {
  flush_posted_ = false;
  if (closed_ || write_waiting_) return;
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
    write_waiting_ = true;
    socket_->async_wait(boost::asio::socket_base::wait_write, [self](const boost::system::error_code& error) {
      self->write_waiting_ = false;
      if (!error) self->flush();
    });
  } else {
    out_.release_if_larger(2 * high_water_mark_);
    if (closing_) {
      close_with(closing_code_);
      return;
    }
    if (ending_ && !write_shut_) {
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
  if (closed_ || out_.empty()) return;
  ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) out_.consume(static_cast<std::size_t>(n));
}

void StreamState::maybe_drain() {
  if (!need_drain_ || closed_ || closing_ || out_.size() >= high_water_mark_) return;
  need_drain_ = false;
  if (framer_) framer_->stream_drained();
  on_drain_();
}

void StreamState::end() {
  if (closed_ || closing_ || ending_) return;
  ending_ = true;
  schedule_flush();
}

}  // namespace detail

// ---------------------------------------------------------------- Stream

Stream Stream::adopt(boost::asio::io_context& io, int fd, NodeId peer, unsigned peer_slot) {
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    int error = errno;
    ::close(fd);
    throw std::system_error(error, std::system_category(), "multinode::Stream::adopt: not a socket");
  }
  if (type != SOCK_STREAM) {
    ::close(fd);
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "multinode::Stream::adopt: not a stream socket");
  }
  // A copy of this fd in a process started later would keep the stream from
  // ending when this process dies (the original multi-node's fault).
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  std::shared_ptr<detail::StreamState> state;
  try {
    state = std::make_shared<detail::StreamState>(io, fd, peer, peer_slot);
  } catch (...) {
    ::close(fd);
    throw;
  }
  state->start();
  return Stream(std::move(state));
}

NodeId Stream::peer_id() const noexcept {
  return state_ ? state_->peer_ : 0;
}
unsigned Stream::peer_slot() const noexcept {
  return state_ ? state_->peer_slot_ : 0;
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
  return state_ ? state_->out_.size() : 0;
}
std::size_t Stream::high_water_mark() const noexcept {
  return state_ ? state_->high_water_mark_ : 0;
}
void Stream::set_high_water_mark(std::size_t bytes) {
  if (!state_) return;
  state_->high_water_mark_ = std::max<std::size_t>(bytes, 1);
}
void Stream::end() {
  if (state_) state_->end();
}
void Stream::close() {
  if (state_) state_->close_with(errc::stream_closed);
}
void Stream::close_when_flushed() {
  if (state_) state_->close_after_flush(errc::stream_closed);
}

void Stream::on_data(std::function<void(std::string_view)> handler) {
  if (state_) state_->set_on_data(std::move(handler));
}
void Stream::on_end(std::function<void()> handler) {
  if (state_ && !state_->shut_down_) state_->on_end_.set(std::move(handler));
}
void Stream::on_close(std::function<void(std::error_code)> handler) {
  if (state_) state_->set_on_close(std::move(handler));
}
void Stream::on_drain(std::function<void()> handler) {
  if (state_ && !state_->shut_down_) state_->on_drain_.set(std::move(handler));
}
void Stream::set_busy_poll(std::chrono::microseconds window) {
  if (state_) state_->busy_poll_ = std::max(window, std::chrono::microseconds(0));
}

bool Stream::try_read_some(boost::asio::mutable_buffer buffer, std::size_t& n) {
  n = 0;
  if (!state_) return true;
  state_->claim_coroutine_reader();
  return state_->try_read_some(buffer, n);
}

void Stream::wait_readable(std::unique_ptr<detail::ReadWaiter> waiter) {
  state_->wait_readable_for(std::move(waiter));
}

}  // namespace multinode

// One WebSocket connection (see session.hpp): reading through the per-thread
// buffer, the decoder's events, output, the closing handshake, the sweep's timeouts.
#include "websocket/session.hpp"

#include "common/log.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <exception>

namespace multinode::websocket::detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

// Every connection of a thread reads into this buffer and decodes there; only a
// frame cut by the end of a read is copied into the connection (pending_).
constexpr std::size_t scratch_size = std::size_t{64} * 1024;

std::span<char> scratch() {
  thread_local std::unique_ptr<char[]> buffer = std::make_unique<char[]>(scratch_size);
  return {buffer.get(), scratch_size};
}

// Output kept across messages while the connection is busy; more is given back at once.
constexpr std::size_t keep_output_bytes = std::size_t{64} * 1024;

}  // namespace

// Connections of an io_context that a send() from outside their own read batch
// (a broadcast from another connection's or the mesh's handler, a timer) gave
// output to: written by one posted pass once the running handler returns. A
// server that fell behind (a read of the sender's socket or of the mesh brings
// several messages) so writes each client's frames with one writev instead of one
// write per frame and client, and catches up instead of staying behind. Weak: a
// connection closed meanwhile is skipped, and none is kept alive by the list. A
// service of the io_context: its state goes with it (one thread runs each).
class DeferredFlushes final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;  // NOLINT(readability-identifier-naming): Asio's name
  explicit DeferredFlushes(asio::execution_context& context) : asio::execution_context::service(context) {}
  void shutdown() override { sessions.clear(); }

  std::vector<std::weak_ptr<Session>> sessions;
  bool posted = false;
};

namespace {

template <typename F>
void guarded(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    multinode::detail::log(multinode::detail::LogLevel::warning, "websocket: ", what,
                           " handler failed: ", e.what());
  } catch (...) {
    multinode::detail::log(multinode::detail::LogLevel::warning, "websocket: ", what, " handler failed");
  }
}

}  // namespace

Session::Session(const Options& options, std::string subprotocol,
                 const std::optional<DeflateParameters>& deflate)
    : decoder_(options.max_message_bytes),
      subprotocol_(std::move(subprotocol)),
      max_buffered_bytes_(options.max_buffered_bytes),
      write_high_water_(options.write_high_water),
      ping_interval_(options.ping_interval),
      pong_timeout_(options.pong_timeout),
      handshake_timeout_(options.handshake_timeout) {
  if (deflate) {
    // Small objects only: zlib's state comes with the first message that needs it.
    decoder_.enable_deflate(
        std::make_unique<Inflater>(deflate->client_max_window_bits, deflate->client_no_context_takeover));
    deflater_ = std::make_unique<Deflater>(deflate->server_max_window_bits, options.deflate_memory_level,
                                           deflate->server_no_context_takeover, options.deflate_threshold);
  }
}

Session::~Session() = default;

void Session::start(http::Handover handover) {
  socket_.emplace(std::move(handover.socket));
  self_ = shared_from_this();
  last_receive_ = Clock::now();
  if (!handover.unsent.empty()) output_.append(handover.unsent);
  if (server_stopping()) start_close(close_code::going_away, "server stopping");
  // The handler that accepted returns first: it sets on_message and the others.
  asio::post(socket_->get_executor(),
             [self = shared_from_this(), received = std::move(handover.received)]() mutable {
               if (self->state_ == State::closed) return;
               if (!received.empty()) {
                 self->received_ = true;
                 self->on_bytes(received.data(), received.size());
               }
               self->flush();
               self->wait_readable();
             });
}

// ---------------------------------------------------------------------------
// Reading

void Session::wait_readable() {
  if (reading_ || state_ == State::closed || (state_ == State::draining && !discard_input_)) return;
  reading_ = true;
  socket_->async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
    self->reading_ = false;
    if (self->state_ == State::closed) return;
    if (ec) {
      self->finish();
      return;
    }
    self->on_readable();
  });
}

void Session::on_readable() {
  const std::span<char> buffer = scratch();
  bool drained = false;
  // A few reads at most, so that one busy client does not starve the others.
  for (int round = 0; round < 16 && !drained; ++round) {
    error_code ec;
    const std::size_t size = socket_->read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      drained = true;
      break;
    }
    if (ec == asio::error::interrupted) continue;
    if (ec) {  // the peer closed (eof) or reset: without a close frame, 1006
      finish();
      return;
    }
    received_ = true;
    on_bytes(buffer.data(), size);
    if (state_ == State::closed) return;
    // A read shorter than asked took all the socket had; bytes arriving after it
    // raise a new readiness edge, which the wait armed below sees (one thread runs the loop).
    drained = size < buffer.size();
  }
  flush();
  if (state_ == State::closed) return;
  if (drained) {
    wait_readable();
    return;
  }
  reading_ = true;
  asio::post(socket_->get_executor(), [self = shared_from_this()] {
    self->reading_ = false;
    if (self->state_ != State::closed) self->on_readable();
  });
}

void Session::on_bytes(char* data, std::size_t size) {
  if (discard_input_ || state_ == State::draining) return;
  in_batch_ = true;
  if (pending_.empty()) {
    const std::size_t used = decoder_.decode(data, size, *this);
    if (used < size && decoder_.failure() == 0 && !decoder_.closed())
      pending_.assign(data + used, size - used);
  } else {
    pending_.append(data, size);
    const std::size_t used = decoder_.decode(pending_.data(), pending_.size(), *this);
    pending_.erase(0, used);
    if (decoder_.failure() != 0 || decoder_.closed()) pending_.clear();
  }
  // Input is held only while a frame is cut: a whole frame gives its buffer back.
  if (pending_.empty() && pending_.capacity() > 0) std::string().swap(pending_);
  in_batch_ = false;
  if (decoder_.failure() != 0 && state_ != State::closed) fail(decoder_.failure(), decoder_.failure_reason());
}

void Session::on_message(std::string_view data, Kind kind) {
  if (state_ != State::open || !on_message_) return;
  bool threw = false;
  try {
    on_message_(data, kind);
  } catch (const std::exception& e) {
    multinode::detail::log(multinode::detail::LogLevel::warning,
                           "websocket: on_message handler failed: ", e.what());
    threw = true;
  } catch (...) {
    multinode::detail::log(multinode::detail::LogLevel::warning, "websocket: on_message handler failed");
    threw = true;
  }
  if (threw) start_close(close_code::internal_error, "server error");
}

void Session::on_ping(std::string_view payload) {
  if (state_ == State::open || state_ == State::closing) queue_frame(Opcode::pong, payload);
}

void Session::on_pong(std::string_view) {
  // Anything received counts as a sign of life (received_), pongs included.
}

void Session::on_close_frame(std::uint16_t code, std::string_view reason) {
  if (state_ == State::open) {
    // The peer closes first: its code is the one reported, and echoed (RFC 6455 §5.5.1).
    close_code_ = code;
    close_reason_.assign(reason);
    if (code == close_code::no_status)
      queue_frame(Opcode::close, {});
    else
      queue_frame(Opcode::close, close_payload(code, {}));
  }
  if (state_ == State::open || state_ == State::closing) {
    state_ = State::draining;
    close_deadline_ = Clock::now() + handshake_timeout_;
  }
}

// ---------------------------------------------------------------------------
// Sending

void Session::queue_frame(Opcode opcode, std::string_view payload, bool compressed) {
  char header[10];
  write_header(header, opcode, payload.size(), compressed);
  output_.append({header, header_size(payload.size())});
  output_.append(payload);
}

// A data message, compressed when permessage-deflate was agreed and it is worth it.
void Session::queue_data(std::string_view data, Kind kind) {
  const Opcode opcode = kind == Kind::text ? Opcode::text : Opcode::binary;
  if (deflater_ && deflater_->wants(data.size())) {
    // One buffer per thread for the compressed form; a large one is not kept.
    thread_local std::string compressed;
    if (deflater_->compress(data, compressed) &&
        (compressed.size() < data.size() || !deflater_->may_send_uncompressed_after_compress())) {
      queue_frame(opcode, compressed, true);
      if (compressed.capacity() > keep_output_bytes) std::string().swap(compressed);
      return;
    }
    if (compressed.capacity() > keep_output_bytes) std::string().swap(compressed);
  }
  queue_frame(opcode, data);
}

// After a data frame was queued: a read's batch being decoded writes its answers
// in one write at its end; any other send() is written by the thread's deferred
// pass (defer_flush), unless the output reached write_high_water: then now.
// What send() returns.
bool Session::after_queue() {
  if (!in_batch_) {
    if (output_.size() >= write_high_water_)
      flush();
    else
      defer_flush();
  }
  if (state_ != State::open) return false;
  if (output_.size() >= write_high_water_) {
    drain_wanted_ = true;
    return false;
  }
  return true;
}

bool Session::send(std::string_view data, Kind kind) {
  if (state_ != State::open) return false;
  const auto keep = shared_from_this();  // a write error closes it, and the caller's pointer may go with that
  if (kind == Kind::text && !is_utf8(data.data(), data.size())) {
    multinode::detail::log(
        multinode::detail::LogLevel::warning,
        "websocket: send() of a text message that is not UTF-8 refused: send it as binary");
    return false;
  }
  if (output_.size() + data.size() + 10 > max_buffered_bytes_) {
    start_close(close_code::policy_violation, "client too slow");
    return false;
  }
  queue_data(data, kind);
  return after_queue();
}

bool Session::send(const Frame& frame) {
  if (state_ != State::open || !frame.wire()) return false;
  const auto keep = shared_from_this();
  if (output_.size() + frame.wire()->size() > max_buffered_bytes_) {
    start_close(close_code::policy_violation, "client too slow");
    return false;
  }
  output_.append_shared(frame.wire());
  return after_queue();
}

void Session::defer_flush() {
  if (flush_deferred_ || waiting_write_ || state_ == State::closed) return;
  bool listed = false;
  try {
    auto& deferred = asio::use_service<DeferredFlushes>(socket_->get_executor().context());
    deferred.sessions.push_back(weak_from_this());
    listed = true;
    if (!deferred.posted) {
      asio::post(socket_->get_executor(), [&deferred] { run_deferred_flushes(deferred); });
      deferred.posted = true;
    }
    flush_deferred_ = true;
  } catch (...) {
    // No memory for the list or the posted pass: write now, as without deferral.
    if (listed) asio::use_service<DeferredFlushes>(socket_->get_executor().context()).sessions.pop_back();
    flush();
  }
}

void Session::run_deferred_flushes(DeferredFlushes& pending) {
  pending.posted = false;
  // A flush may send (on_drain) and so defer again: that goes in the next pass.
  std::vector<std::weak_ptr<Session>> sessions;
  sessions.swap(pending.sessions);
  for (const auto& weak : sessions) {
    if (const auto session = weak.lock()) {
      session->flush_deferred_ = false;
      session->flush();
    }
  }
  if (pending.sessions.empty()) {
    sessions.clear();
    pending.sessions.swap(sessions);  // the capacity serves the next pass
  }
}

void Session::flush() {
  if (state_ == State::closed || waiting_write_) return;
  for (int attempt = 0; attempt < 8 && !output_.empty(); ++attempt) {
    output_.buffers(write_buffers_);
    error_code ec;
    const std::size_t written = socket_->write_some(write_buffers_, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec == asio::error::interrupted) continue;
    if (ec) {
      finish();
      return;
    }
    output_.consume(written);
  }
  if (!output_.empty()) {
    wait_writable();
    return;
  }
  output_drained();
}

void Session::wait_writable() {
  waiting_write_ = true;
  socket_->async_wait(tcp::socket::wait_write, [self = shared_from_this()](const error_code& ec) {
    self->waiting_write_ = false;
    if (self->state_ == State::closed) return;
    if (ec) {
      self->finish();
      return;
    }
    self->flush();
  });
}

void Session::output_drained() {
  if (discard_input_ && state_ != State::open) {
    // Failed (a protocol error): the close frame is out. Half-close so that the
    // peer sees it and the end of stream, then read (and drop) what it still sends
    // until it closes, or handshake_timeout: closing with unread input would reset
    // the connection and could destroy the close frame before the peer reads it.
    if (!shut_down_) {
      shut_down_ = true;
      error_code ec;
      socket_->shutdown(tcp::socket::shutdown_send, ec);
    }
    wait_readable();
    return;
  }
  if (state_ == State::draining) {
    // Both close frames are exchanged and ours is out: the server closes the TCP
    // connection first (RFC 6455 §7.1.1).
    finish();
    return;
  }
  if (output_.held_bytes() > keep_output_bytes) output_.release();
  if (drain_wanted_ && state_ == State::open) {
    drain_wanted_ = false;
    if (on_drain_) {
      auto handler = std::move(on_drain_);
      on_drain_ = nullptr;
      guarded("on_drain", handler);
      if (!on_drain_ && state_ != State::closed) on_drain_ = std::move(handler);
    }
  }
}

// ---------------------------------------------------------------------------
// Closing

void Session::close(std::uint16_t code, std::string_view reason) {
  // Codes an endpoint may not send (1005, 1006, 1015, out of range) become 1000.
  if (!is_valid_close_code(code)) code = close_code::normal;
  const auto keep = shared_from_this();
  start_close(code, reason);
}

void Session::start_close(std::uint16_t code, std::string_view reason) {
  if (state_ != State::open) return;
  const std::string payload = close_payload(code, reason);
  close_code_ = code;
  close_reason_.assign(payload, 2);
  queue_frame(Opcode::close, payload);
  state_ = State::closing;
  close_deadline_ = Clock::now() + handshake_timeout_;
  if (!in_batch_) flush();
}

void Session::fail(std::uint16_t code, const char* reason) {
  multinode::detail::log(multinode::detail::LogLevel::debug, "websocket: closing a connection with ", code,
                         ": ", reason);
  discard_input_ = true;
  if (state_ != State::open) {
    finish();
    return;
  }
  start_close(code, reason);
  flush();
}

void Session::finish(bool report_now) noexcept {
  if (state_ == State::closed) return;
  state_ = State::closed;
  error_code ec;
  if (socket_) socket_->close(ec);
  output_.clear();
  output_.release();
  std::string().swap(pending_);
  decoder_.release_all();
  if (deflater_) deflater_->release();
  std::vector<asio::const_buffer>().swap(write_buffers_);
  // The handlers often hold this connection: letting go of them breaks the cycle.
  on_message_ = nullptr;
  on_drain_ = nullptr;
  auto on_close = std::move(on_close_);
  on_close_ = nullptr;
  const std::uint16_t code = close_code_ != 0 ? close_code_ : close_code::abnormal;
  auto self = std::move(self_);  // the connection may go once this function returns
  if (on_close && report_now) {
    guarded("on_close", [&] { on_close(code, close_reason_); });
  } else if (on_close) {
    // Posted: finish() may run inside a send() of the application (a write error),
    // e.g. while it iterates over the very list its on_close handler erases from.
    // Posted before release(), so that it runs before a drained server's on_drained.
    try {
      asio::post(socket_->get_executor(), [self = shared_from_this(), on_close = std::move(on_close), code] {
        guarded("on_close", [&] { on_close(code, self->close_reason_); });
      });
    } catch (...) {
      // No memory for the posted handler: the close goes unreported.
    }
  }
  release();
}

// ---------------------------------------------------------------------------
// The server's sweep and stop

void Session::on_server_stop() {
  const auto keep = shared_from_this();
  start_close(close_code::going_away, "server stopping");
}

void Session::check_deadlines(Clock::time_point now) {
  const auto keep = shared_from_this();
  if (state_ == State::closed) return;
  if (received_) {
    received_ = false;
    last_receive_ = now;
    ping_outstanding_ = false;
  } else if (output_.empty() && !waiting_write_) {
    // Idle since the last sweep: the buffers go back.
    output_.release();
    decoder_.free_memory();
    // zlib's state, unless it holds a context taken over from message to message.
    if (deflater_) deflater_->release_if_idle();
    std::vector<asio::const_buffer>().swap(write_buffers_);
  }
  if (state_ != State::open) {
    if (now >= close_deadline_) finish();  // no close frame back, or our output stuck
    return;
  }
  if (ping_interval_ <= Clock::duration::zero()) return;
  if (!ping_outstanding_) {
    if (now - last_receive_ >= ping_interval_) {
      ping_outstanding_ = true;
      ping_sent_ = now;
      queue_frame(Opcode::ping, {});
      flush();
    }
  } else if (pong_timeout_ > Clock::duration::zero() && now - ping_sent_ >= pong_timeout_) {
    multinode::detail::log(multinode::detail::LogLevel::debug,
                           "websocket: no answer to a ping: connection closed");
    finish();  // a dead peer: reported as 1006
  }
}

void Session::destroy_io_objects() noexcept {
  const auto keep = shared_from_this();
  finish(/*report_now=*/true);  // the io_context will not run a posted handler
  socket_.reset();
}

}  // namespace multinode::websocket::detail

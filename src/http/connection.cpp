// One HTTP/1.1 connection (see connection.hpp): the read and batch loop, the
// timeouts, the response in hand, writing and lingering on close.
#include "http/connection.hpp"

#include "common/log.hpp"
#include "http/serializer.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <exception>

namespace multinode::http::detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

// What a lingering connection may still read before it is simply closed.
constexpr std::size_t max_linger_bytes = std::size_t{1024} * 1024;

}  // namespace

Connection::Connection(std::shared_ptr<ServerImpl> server, tcp::socket socket)
    : server_(std::move(server)), socket_(std::move(socket)) {}

Connection::~Connection() {
  server_->exchange_pool().drop(std::move(held_));
  server_->unlink(*this);
}

void Connection::start() {
  error_code ec;
  // Writes are attempted at once and only wait for writability when the socket is
  // full. (The fd is non-blocking since accept4(); this tells Asio so.)
  socket().non_blocking(true, ec);
  add_ref();  // held while open
  server_->link(*this);
  read_timer_ = ReadTimer::head;
  read_deadline_ = server_->now() + server_->options().header_timeout;
  read();
}

// ---------------------------------------------------------------------------
// Reading and the batch loop

void Connection::read() {
  if (state_ != State::open || reading_ || peer_closed_ || exchange_ == Exchange::awaiting) return;
  if (output_full()) return;  // resumed when the output drains
  if (between_requests()) {
    // Nothing in hand: wait for the next request without holding a buffer or the
    // state of an exchange, and take them (from the pools) when its bytes arrive.
    // An idle keep-alive connection then costs its object and its socket, not 8 KiB.
    release_state();
    wait_readable();
    return;
  }
  const std::span<char> room = reader().prepare();
  if (room.empty()) {
    // The reader refused the request (it cannot fit within the limits).
    on_bad_request();
    flush();
    return;
  }
  reading_ = true;
  add_ref();
  socket().async_read_some(asio::buffer(room.data(), room.size()),
                           [this](const error_code& ec, std::size_t size) {
                             reading_ = false;
                             on_read(ec, size);
                             drop_ref();
                           });
}

void Connection::wait_readable() {
  reading_ = true;
  add_ref();
  socket().async_wait(tcp::socket::wait_read, [this](const error_code& ec) {
    reading_ = false;
    if (!closed()) {
      if (!ec)
        on_readable();
      else if (ec != asio::error::operation_aborted)
        close_now();
    }
    drop_ref();
  });
}

void Connection::take_state() {
  if (!held_) held_ = server_->exchange_pool().take();
}

void Connection::release_state() noexcept {
  if (!held_) return;
  reader().free_memory();
  output().release();
  if (exchange_ != Exchange::none || !reader().between_requests() || !output().empty()) return;
  // Stale Response handles find no response in hand. A drain callback an ended
  // response left goes too, destroyed last: it may hold handles, whose drop comes back here.
  const std::function<void()> on_drain = std::move(response().on_drain);
  response().reset(false);
  response().stage = ResponseState::Stage::ended;
  server_->exchange_pool().give(std::move(held_));
}

void Connection::on_readable() {
  if (state_ == State::lingering) {
    linger_read();
    return;
  }
  take_state();
  const std::span<char> room = reader().prepare();  // between requests: never refused
  error_code ec;
  std::size_t size = 0;
  do {
    size = socket().read_some(asio::buffer(room.data(), room.size()), ec);
  } while (ec == asio::error::interrupted);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    // A spurious wake-up: wait again (read() gives the buffer back first).
    read();
    return;
  }
  on_read(ec, size);
}

void Connection::on_read(const error_code& ec, std::size_t size) {
  if (closed()) return;
  server_->refresh_clock();
  if (state_ == State::lingering) {
    lingered_bytes_ += size;
    if (ec || lingered_bytes_ > max_linger_bytes) {
      close_now();
      return;
    }
    linger_read();
    return;
  }
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    if (held_) reader().free_memory();  // nothing was read into it: no buffer is held for nothing
    if (ec == asio::error::eof) {
      on_peer_closed();
      return;
    }
    close_now();
    return;
  }
  ++server_->stats().reads;
  reader().commit(size);
  resume();
}

void Connection::on_peer_closed() {
  // The client shut down its side: answer what it sent, then close.
  peer_closed_ = true;
  resume();
}

void Connection::resume() {
  // Parsing pauses while Options::write_high_water bytes wait to go out; when a
  // flush empties the output at once, go on with the requests already buffered.
  bool paused_for_output = false;
  for (int round = 0; round < 16; ++round) {
    paused_for_output = process();
    if (closed()) return;
    flush();
    if (closed()) return;
    if (!paused_for_output || waiting_write_ || output_full()) break;
  }
  if (paused_for_output && !waiting_write_ && !output_full()) {
    // Still more to answer: let other connections run first.
    add_ref();
    asio::post(socket().get_executor(), [this] {
      if (!closed()) resume();
      drop_ref();
    });
    return;
  }
  read();
}

// Handles the buffered bytes; true when it stopped because the output is full
// (requests wait in the buffer until it drains).
bool Connection::process() {
  if (in_batch_ || closed() || !held_) return false;
  in_batch_ = true;
  bool paused_for_output = false;
  // Each pass handles one event of the buffered bytes; the buffer is finite.
  while (state_ == State::open) {
    if (exchange_ == Exchange::awaiting) break;
    if (output_full()) {
      paused_for_output = true;
      break;
    }
    const ReadEvent event = reader().next();
    if (event == ReadEvent::need_more) {
      if (peer_closed_) {
        // Nothing more will come: an idle connection is done, a partial request never will be.
        if (reader().phase() == ReadPhase::idle) {
          close_after_output();
        } else {
          in_batch_ = false;
          close_now();
          return false;
        }
      }
      break;
    }
    if (event == ReadEvent::failed) {
      on_bad_request();
      break;
    }
    if (event == ReadEvent::head)
      on_head();
    else
      on_complete();
  }
  in_batch_ = false;
  if (closed()) drop_callbacks();
  update_read_timer();
  return paused_for_output;
}

void Connection::drop_callbacks() noexcept {
  // Callbacks of the application often hold a Response handle, which holds this
  // connection: a closed connection lets go of them so that it can be freed.
  if (!held_) return;
  Request& request = reader().request();
  request.on_data_ = nullptr;
  request.on_end_ = nullptr;
  response().on_drain = nullptr;
}

void Connection::on_head() {
  ++generation_;
  exchange_ = Exchange::receiving;
  const Request& request = reader().request();
  response().reset(request.is_head());
  // RFC 9110 10.1.1: a client waiting for 100 Continue sends the body once told to.
  if (request.expects_continue_ && reader().phase() == ReadPhase::body) write_continue(output());
  if (server_->options().stream_body) {
    exchange_ = Exchange::streaming;
    dispatch();
  }
}

void Connection::on_complete() {
  Request& request = reader().request();
  // The body is done: drop the callbacks (they often hold a Response handle, which
  // holds this connection) before running the last one.
  request.on_data_ = nullptr;
  auto on_end = std::move(request.on_end_);
  request.on_end_ = nullptr;
  if (exchange_ == Exchange::receiving) {
    exchange_ = Exchange::awaiting;
    dispatch();
  } else if (exchange_ == Exchange::answered) {
    exchange_ = Exchange::done;
  } else if (exchange_ == Exchange::streaming) {
    exchange_ = Exchange::awaiting;
    if (on_end) {
      try {
        on_end();
      } catch (const std::exception& e) {
        on_handler_failure(e.what());
      } catch (...) {
        on_handler_failure("unknown exception");
      }
    }
  }
  if (closed()) return;
  if (exchange_ == Exchange::done) finish_exchange();
}

void Connection::dispatch() {
  ++server_->stats().requests;
  Response response(this, generation_);
  try {
    server_->handler()(reader().request(), response);
  } catch (const std::exception& e) {
    on_handler_failure(e.what());
  } catch (...) {
    on_handler_failure("unknown exception");
  }
}

void Connection::finish_exchange() {
  reader().finish_request();
  exchange_ = Exchange::none;
  // Graceful stop: the request in hand was the last one.
  if (server_->stopping()) close_after_output();
  reader().free_memory();
}

void Connection::response_done() {
  // The request is whole (done) or its body still arrives (answered).
  exchange_ = exchange_ == Exchange::awaiting ? Exchange::done : Exchange::answered;
  if (in_batch_) return;  // the batch loop goes on from here
  if (exchange_ == Exchange::done) finish_exchange();
  resume();
}

void Connection::close_after_output() noexcept {
  if (state_ == State::open) state_ = State::closing;
}

void Connection::on_handler_failure(const char* what) {
  ++server_->stats().handler_errors;
  multinode::detail::log(multinode::detail::LogLevel::warning, "http handler failed: ", what);
  if (response().finished() || closed()) return;
  if (!response().head_sent()) send_error(500);
  response().stage = ResponseState::Stage::abandoned;  // the handler's Response handles go stale
  close_after_output();
  response_done();
}

// The server answers the request in hand with error_status instead of the handler
// (unless a streaming handler's head already went out) and closes once it is sent.
void Connection::abandon_response(unsigned error_status) {
  if (!(dispatched() && response().head_sent())) send_error(error_status);
  response().stage = ResponseState::Stage::abandoned;
  // The handler's response is over, whatever it does next; no request follows.
  if (exchange_ == Exchange::streaming) exchange_ = Exchange::answered;
  if (exchange_ == Exchange::awaiting) exchange_ = Exchange::done;
  close_after_output();
}

void Connection::on_bad_request() {
  ++server_->stats().bad_requests;
  if (reader().callback_failed()) {
    on_handler_failure("a Request::on_data handler threw");
    return;
  }
  const error reason = reader().failure();
  multinode::detail::log(multinode::detail::LogLevel::debug,
                         "http: refused a request: ", make_error_code(reason).message());
  abandon_response(status_of(reason));
}

void Connection::update_read_timer() {
  if (closed() || state_ == State::lingering) return;
  const Clock::time_point now = server_->now();
  const Options& options = server_->options();
  if (state_ == State::closing || exchange_ == Exchange::awaiting) {
    read_timer_ = ReadTimer::none;  // the write timeout and the application govern
    return;
  }
  switch (read_phase()) {
    case ReadPhase::idle:
      if (read_timer_ != ReadTimer::idle) {
        read_timer_ = ReadTimer::idle;
        read_deadline_ = now + options.idle_timeout;
      }
      break;
    case ReadPhase::head:
      // Started at the request's first byte (or the connection's start) and never
      // pushed back: a client trickling its head is cut off all the same.
      if (read_timer_ != ReadTimer::head) {
        read_timer_ = ReadTimer::head;
        read_deadline_ = now + options.header_timeout;
      }
      break;
    case ReadPhase::body:
      read_timer_ = ReadTimer::body;
      read_deadline_ = now + options.body_timeout;
      break;
    case ReadPhase::complete:
      read_timer_ = ReadTimer::none;
      break;
  }
}

// ---------------------------------------------------------------------------
// Timeouts and stopping

void Connection::check_deadlines(Clock::time_point now) {
  if (closed()) return;
  Stats& stats = server_->stats();
  if (waiting_write_ && now >= write_deadline_) {
    ++stats.write_timeouts;
    close_now();
    return;
  }
  if (read_timer_ == ReadTimer::none || now < read_deadline_) return;
  const ReadTimer timer = read_timer_;
  read_timer_ = ReadTimer::none;
  switch (timer) {
    case ReadTimer::none:
      return;
    case ReadTimer::linger:
      close_now();
      return;
    case ReadTimer::idle:
      if (!output_empty() || waiting_write_) {
        read_timer_ = ReadTimer::idle;  // still sending: the write timeout governs
        read_deadline_ = now + server_->options().idle_timeout;
        return;
      }
      ++stats.idle_timeouts;
      close_now();
      return;
    case ReadTimer::head:
    case ReadTimer::body:
      if (timer == ReadTimer::head)
        ++stats.header_timeouts;
      else
        ++stats.body_timeouts;
      if (read_phase() == ReadPhase::idle) {
        close_now();  // a connection that never sent a byte gets no answer
        return;
      }
      abandon_response(408);
      flush();
      return;
  }
}

void Connection::on_server_stop() {
  if (state_ != State::open) return;
  const bool in_hand =
      read_phase() != ReadPhase::idle || exchange_ == Exchange::streaming || exchange_ == Exchange::awaiting;
  if (in_hand) return;  // finish_exchange() closes once it is answered
  // Between requests. Under load the client is sending its next request right now,
  // or it already sits read but unparsed behind this stop: closing would fail it.
  // Keep reading for Options::stop_grace; what arrives is answered with
  // `Connection: close`, and a connection that stays quiet is closed by the idle timer.
  const Clock::time_point grace_end = server_->now() + server_->options().stop_grace;
  read_deadline_ = read_timer_ == ReadTimer::idle ? std::min(read_deadline_, grace_end) : grace_end;
  read_timer_ = ReadTimer::idle;
}

void Connection::close_now() noexcept {
  if (closed()) return;
  state_ = State::closed;
  error_code ec;
  if (socket_) socket().close(ec);
  // Inside a batch a callback may be running: process() drops them at its end.
  if (!in_batch_) drop_callbacks();
  server_->connection_closed();
  drop_ref();  // the reference held while open; pending operations and handles hold their own
}

void Connection::destroy_io_objects() noexcept {
  close_now();
  socket_.reset();
}

// ---------------------------------------------------------------------------
// Response handles

void Connection::handle_added(std::uint64_t generation) noexcept {
  add_ref();
  if (generation == generation_ && held_) ++response().handles;
}

void Connection::handle_dropped(std::uint64_t generation) noexcept {
  if (generation == generation_ && held_ && response().handles > 0 && --response().handles == 0 &&
      !response().finished() && !closed()) {
    on_handler_failure("the handler dropped its Response without ending it");
  }
  drop_ref();
}

void Connection::set_status(std::uint64_t generation, unsigned status) {
  if (!active(generation) || response().head_sent()) return;
  response().status = status;
}

void Connection::add_header(std::uint64_t generation, std::string_view name, std::string_view value) {
  if (!active(generation) || response().head_sent()) return;
  response().add_header(name, value);
}

void Connection::add_trailer(std::uint64_t generation, std::string_view name, std::string_view value) {
  if (!active(generation)) return;
  response().add_trailer(name, value);
}

void Connection::set_drain_handler(std::uint64_t generation, std::function<void()> handler) {
  if (!active(generation)) return;
  response().on_drain = std::move(handler);
}

void Connection::write_head(std::optional<std::uint64_t> content_length, bool streaming) {
  const Request& request = reader().request();
  const bool http10 = request.version() < 11;
  const unsigned status = response().status;
  const bool no_body = status == 204 || status == 304;
  HeadFraming framing;
  framing.close = !request.keep_alive() || response().user_close || server_->stopping() ||
                  (peer_closed_ && reader().unparsed() == 0);
  if (!no_body) {
    if (!streaming) {
      framing.content_length = content_length;
    } else if (http10) {
      // HTTP/1.0 has no chunked coding: the body ends where the connection does.
      framing.close = true;
    } else {
      framing.chunked = true;
    }
  }
  framing.keep_alive = http10 && !framing.close;
  detail::write_head(output(), status, response().user_date ? std::string_view() : server_->date_line(),
                     framing, response().headers);
  response().stage = ResponseState::Stage::head_sent;
  response().chunked = framing.chunked;
  response().will_close = framing.close;
}

void Connection::send_error(unsigned status) {
  linger_needed_ = true;  // the client may still be sending the refused request
  write_error(output(), status, server_->date_line());
}

bool Connection::refused_connect_success() {
  const unsigned status = response().status;
  if (response().head_sent() || status < 200 || status > 299 || reader().request().method() != "CONNECT")
    return false;
  ++server_->stats().handler_errors;
  multinode::detail::log(multinode::detail::LogLevel::warning,
                         "http: a 2xx answer to CONNECT must take the connection over (Response::take_over); "
                         "RFC 9110 9.3.6 forbids a body: answered 501 instead");
  send_error(501);
  response().stage = ResponseState::Stage::abandoned;
  close_after_output();
  response_done();
  return true;
}

std::optional<Handover> Connection::take_over(std::uint64_t generation, TakenOver& owner, unsigned status) {
  // (A read still pending would take bytes of the new protocol into this connection's buffer.)
  if (!active(generation) || response().head_sent() || state_ != State::open || owner.registered() ||
      reading_)
    return std::nullopt;
  const Request& request = reader().request();
  const bool connect = request.method() == "CONNECT";
  const bool upgrade =
      status == 101 && !connect && request.version() >= 11 && request.find("upgrade") != nullptr;
  if (!upgrade && !(connect && status >= 200 && status <= 299)) return std::nullopt;
  // The request must be whole: the bytes after it belong to the new protocol.
  const bool whole = exchange_ == Exchange::awaiting ||
                     (exchange_ == Exchange::streaming && reader().phase() == ReadPhase::complete);
  if (!whole) return std::nullopt;

  HeadFraming framing;
  framing.upgrade = upgrade;
  detail::write_head(output(), status, response().user_date ? std::string_view() : server_->date_line(),
                     framing, response().headers);
  response().stage = ResponseState::Stage::ended;
  exchange_ = Exchange::done;
  // Written at once when the socket takes it (the usual case); the rest goes to the new owner.
  std::vector<asio::const_buffer>& write_buffers = server_->write_buffers();
  for (int attempt = 0; attempt < 8 && !output().empty() && !waiting_write_; ++attempt) {
    output().buffers(write_buffers);
    error_code ec;
    ++server_->stats().writes;
    const std::size_t written = socket().write_some(write_buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec == asio::error::interrupted) continue;
    if (ec) {
      close_now();
      return std::nullopt;
    }
    output().consume(written);
  }
  std::string unsent;
  if (!output().empty()) {
    output().buffers(write_buffers, std::size_t(-1));
    for (const auto& buffer : write_buffers)
      unsent.append(static_cast<const char*>(buffer.data()), buffer.size());
    output().clear();
  }
  Handover handover{std::move(socket()), std::string(reader().unparsed_bytes()), std::move(unsent)};
  // Closed for HTTP, without closing the socket; the server counts the connection
  // as open until the new owner releases it.
  state_ = State::closed;
  socket_.reset();
  server_->adopt(*this, owner);
  if (!in_batch_) drop_callbacks();
  drop_ref();  // the reference held while open; the caller's Response handle holds another
  return handover;
}

bool Connection::write_body(std::uint64_t generation, std::string_view chunk) {
  if (!active(generation)) return false;
  if (refused_connect_success()) return false;
  if (!response().head_sent()) write_head(std::nullopt, true);
  if (!chunk.empty() && response().body_allowed()) {
    if (response().chunked)
      write_chunk(output(), chunk);
    else
      output().append(chunk);
  }
  if (!in_batch_) flush();
  if (closed()) return false;
  if (output_full()) {
    response().drain_wanted = true;
    return false;
  }
  return true;
}

void Connection::end_response(std::uint64_t generation, std::string_view body, std::string* owned) {
  if (!active(generation)) return;
  if (refused_connect_success()) return;
  const std::string_view data = owned ? std::string_view(*owned) : body;
  if (!response().head_sent()) {
    write_head(data.size(), false);
    if (response().body_allowed() && !data.empty()) {
      if (owned)
        output().append_owned(std::move(*owned));
      else
        output().append(data);
    }
  } else if (response().body_allowed()) {
    if (response().chunked) {
      if (!data.empty()) write_chunk(output(), data);
      write_last_chunk(output(), response().trailers);
    } else if (!data.empty()) {
      output().append(data);
    }
  }
  response().stage = ResponseState::Stage::ended;
  if (response().will_close) {
    close_after_output();
    if (exchange_ != Exchange::awaiting) linger_needed_ = true;  // the rest of the body is on its way
  }
  response_done();
}

// ---------------------------------------------------------------------------
// Writing

void Connection::flush() {
  if (closed() || waiting_write_) return;
  // A few attempts: a partial write means the socket is full and the next would block.
  for (int attempt = 0; attempt < 8 && !output_empty(); ++attempt) {
    std::vector<asio::const_buffer>& buffers = server_->write_buffers();
    output().buffers(buffers);
    error_code ec;
    ++server_->stats().writes;
    const std::size_t written = socket().write_some(buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec == asio::error::interrupted) continue;
    if (ec) {
      close_now();
      return;
    }
    output().consume(written);
    write_deadline_ = server_->now() + server_->options().write_timeout;
  }
  if (!output_empty()) {
    wait_writable();
    return;
  }
  output_drained();
}

void Connection::wait_writable() {
  waiting_write_ = true;
  write_deadline_ = server_->now() + server_->options().write_timeout;
  add_ref();
  socket().async_wait(tcp::socket::wait_write, [this](const error_code& ec) {
    waiting_write_ = false;
    if (!closed()) {
      if (ec) {
        close_now();
      } else {
        server_->refresh_clock();
        flush();
        // Requests left unparsed while the output was full.
        if (!closed() && !waiting_write_ && !output_full()) resume();
      }
    }
    drop_ref();
  });
}

void Connection::output_drained() {
  if (state_ != State::open) {
    begin_linger();
    return;
  }
  if (exchange_ == Exchange::none && between_requests()) {
    // Between requests: hold no output buffer and no exchange state either (the
    // wait for the next request may have begun while this output still went out).
    release_state();
  } else {
    output().free_memory(std::size_t{64} * 1024);
  }
  // The idle time starts once the last response is out; during a graceful stop the
  // grace's end stands.
  if (read_timer_ == ReadTimer::idle && !server_->stopping())
    read_deadline_ = server_->now() + server_->options().idle_timeout;
  if (held_ && response().drain_wanted && response().on_drain && !response().finished()) {
    response().drain_wanted = false;
    auto handler = std::move(response().on_drain);
    response().on_drain = nullptr;
    handler();
  }
}

void Connection::begin_linger() {
  if (state_ == State::lingering || closed()) return;
  state_ = State::closing;
  error_code ec;
  if (!linger_needed_ && unparsed() == 0 && socket().available(ec) == 0 && !ec) {
    // Nothing unread and no reason to expect more (no refused or half-read request):
    // a plain close sends the FIN after the queued response, like nginx's heuristic.
    close_now();
    return;
  }
  state_ = State::lingering;
  // Half-close so the client sees the end of the response, then read what it
  // still sends: closing with unread input would reset the connection and could
  // destroy the response before the client reads it.
  socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec || peer_closed_) {
    close_now();
    return;
  }
  read_timer_ = ReadTimer::linger;
  read_deadline_ = server_->now() + server_->options().linger_timeout;
  if (!reading_) linger_read();
}

void Connection::linger_read() {
  reading_ = true;
  add_ref();
  const std::span<char> discard = server_->discard_buffer();
  socket().async_read_some(asio::buffer(discard.data(), discard.size()),
                           [this](const error_code& ec, std::size_t size) {
                             reading_ = false;
                             on_read(ec, size);
                             drop_ref();
                           });
}

}  // namespace multinode::http::detail

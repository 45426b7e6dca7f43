#include "http/connection.hpp"

#include "common/log.hpp"
#include "http/text.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/status.hpp>

#include <charconv>
#include <exception>

namespace multinode::http::detail {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

// What a lingering connection may still read before it is simply closed.
constexpr std::size_t max_linger_bytes = std::size_t{1024} * 1024;

std::string_view reason_phrase(unsigned status) {
  std::string_view reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  if (reason.empty() || reason.front() == '<') return "Unknown";
  return reason;
}

}  // namespace

Connection::Connection(std::shared_ptr<ServerImpl> server, tcp::socket socket)
    : server_(std::move(server)), socket_(std::move(socket)), reader_(server_->options()) {}

Connection::~Connection() { server_->unlink(this); }

void Connection::start() {
  error_code ec;
  // Responses go out whole (one writev per batch): nothing to gain from Nagle.
  socket().set_option(tcp::no_delay(true), ec);
  // Writes are attempted at once and only wait for writability when the socket is full.
  socket().non_blocking(true, ec);
  add_ref();  // held while open
  server_->link(this);
  read_timer_ = ReadTimer::head;
  read_deadline_ = server_->now() + server_->options().header_timeout;
  read();
}

// ---------------------------------------------------------------------------
// Reading and the batch loop

void Connection::read() {
  if (closed_ || reading_ || closing_ || peer_closed_ || awaiting_application()) return;
  if (output_full()) return;  // resumed when the output drains
  const std::span<char> room = reader_.prepare();
  if (room.empty()) {
    // The reader refused the request (it cannot fit within the limits).
    on_bad_request();
    flush();
    return;
  }
  reading_ = true;
  add_ref();
  socket().async_read_some(asio::buffer(room.data(), room.size()), [this](const error_code& ec, std::size_t size) {
    reading_ = false;
    on_read(ec, size);
    release();
  });
}

void Connection::on_read(const error_code& ec, std::size_t size) {
  if (closed_) return;
  server_->refresh_clock();
  if (lingering_) {
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
    if (ec == asio::error::eof) {
      on_peer_closed();
      return;
    }
    close_now();
    return;
  }
  ++server_->stats().reads;
  reader_.commit(size);
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
  for (int round = 0; round < 16; ++round) {
    process();
    if (closed_) return;
    flush();
    if (closed_) return;
    if (!paused_for_output_ || waiting_write_ || output_full()) break;
  }
  if (paused_for_output_ && !waiting_write_ && !output_full()) {
    // Still more to answer: let other connections run first.
    add_ref();
    asio::post(socket().get_executor(), [this] {
      if (!closed_) resume();
      release();
    });
    return;
  }
  read();
}

void Connection::process() {
  if (in_batch_ || closed_) return;
  in_batch_ = true;
  paused_for_output_ = false;
  // Each pass handles one event of the buffered bytes; the buffer is finite.
  while (!closed_ && !closing_) {
    if (awaiting_application()) break;
    if (output_full()) {
      paused_for_output_ = true;  // resumed when the output drains
      break;
    }
    const ReadEvent event = reader_.next();
    if (event == ReadEvent::need_more) {
      if (peer_closed_) {
        // Nothing more will come: an idle connection is done, a partial request never will be.
        if (reader_.phase() == ReadPhase::idle) {
          closing_ = true;
        } else {
          in_batch_ = false;
          close_now();
          return;
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
  if (closed_) drop_callbacks();
  update_read_timer();
}

void Connection::drop_callbacks() noexcept {
  // Callbacks of the application often hold a Response handle, which holds this
  // connection: a closed connection lets go of them so that it can be freed.
  Request& request = reader_.request();
  request.on_data_ = nullptr;
  request.on_end_ = nullptr;
  response_.on_drain = nullptr;
}

void Connection::on_head() {
  ++generation_;
  request_complete_ = false;
  response_done_ = false;
  dispatched_ = false;
  ResponseState& r = response_;
  r.status = 200;
  r.headers.clear();
  r.trailers.clear();
  r.handles = 0;
  r.head_sent = r.ended = r.chunked = r.will_close = r.user_close = r.user_date = r.drain_wanted = false;
  r.on_drain = nullptr;
  const Request& request = reader_.request();
  r.head_request = request.is_head();
  // RFC 9110 10.1.1: a client waiting for 100 Continue sends the body once told to.
  if (request.expects_continue_ && reader_.phase() == ReadPhase::body) output_.append("HTTP/1.1 100 Continue\r\n\r\n");
  if (server_->options().stream_body) dispatch();
}

void Connection::on_complete() {
  request_complete_ = true;
  Request& request = reader_.request();
  // The body is done: drop the callbacks (they often hold a Response handle, which
  // holds this connection) before running the last one.
  request.on_data_ = nullptr;
  auto on_end = std::move(request.on_end_);
  request.on_end_ = nullptr;
  if (!dispatched_) {
    dispatch();
  } else if (on_end && !response_.ended) {
    try {
      on_end();
    } catch (const std::exception& e) {
      on_handler_failure(e.what());
    } catch (...) {
      on_handler_failure("unknown exception");
    }
  }
  if (closed_) return;
  if (response_done_) finish_exchange();
}

void Connection::dispatch() {
  dispatched_ = true;
  ++server_->stats().requests;
  Response response(this, generation_);
  try {
    server_->handler()(reader_.request(), response);
  } catch (const std::exception& e) {
    on_handler_failure(e.what());
  } catch (...) {
    on_handler_failure("unknown exception");
  }
}

void Connection::finish_exchange() {
  reader_.finish_request();
  request_complete_ = false;
  dispatched_ = false;
  response_done_ = true;
  // Graceful stop: the request in hand was the last one.
  if (stop_requested_) closing_ = true;
  reader_.release_memory();
}

void Connection::response_done() {
  response_done_ = true;
  if (in_batch_) return;  // the batch loop goes on from here
  if (request_complete_) finish_exchange();
  resume();
}

void Connection::on_handler_failure(const char* what) {
  ++server_->stats().handler_errors;
  multinode::detail::log(multinode::detail::LogLevel::warning, "http handler failed: ", what);
  if (response_.ended || closed_) return;
  if (!response_.head_sent) send_error(500);
  response_.ended = true;  // the handler's Response handles go stale
  closing_ = true;
  response_done();
}

void Connection::on_bad_request() {
  ++server_->stats().bad_requests;
  if (reader_.callback_failed()) {
    on_handler_failure("a Request::on_data handler threw");
    return;
  }
  const error reason = reader_.failure();
  multinode::detail::log(multinode::detail::LogLevel::debug, "http: refused a request: ",
                         make_error_code(reason).message());
  // A streaming handler that already started its response cannot be answered again.
  if (!(dispatched_ && response_.head_sent)) send_error(status_of(reason));
  response_.ended = true;
  response_done_ = true;
  closing_ = true;
}

void Connection::update_read_timer() {
  if (closed_ || lingering_) return;
  const Clock::time_point now = server_->now();
  const Options& options = server_->options();
  if (closing_ || awaiting_application()) {
    read_timer_ = ReadTimer::none;  // the write timeout and the application govern
    return;
  }
  switch (reader_.phase()) {
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
  if (closed_) return;
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
      if (!output_.empty() || waiting_write_) {
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
      if (reader_.phase() == ReadPhase::idle) {
        close_now();  // a connection that never sent a byte gets no answer
        return;
      }
      if (!(dispatched_ && response_.head_sent)) send_error(408);
      response_.ended = true;
      response_done_ = true;
      closing_ = true;
      flush();
      return;
  }
}

void Connection::on_server_stop() {
  stop_requested_ = true;
  if (closed_ || closing_) return;
  const bool in_hand = reader_.phase() != ReadPhase::idle || awaiting_application() || (dispatched_ && !response_done_);
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
  if (closed_) return;
  closed_ = true;
  error_code ec;
  if (socket_) socket().close(ec);
  // Inside a batch a callback may be running: process() drops them at its end.
  if (!in_batch_) drop_callbacks();
  server_->connection_closed();
  release();  // the reference held while open; pending operations and handles hold their own
}

void Connection::release_socket() noexcept {
  close_now();
  socket_.reset();
}

// ---------------------------------------------------------------------------
// Response handles

void Connection::handle_added(std::uint64_t generation) noexcept {
  add_ref();
  if (generation == generation_) ++response_.handles;
}

void Connection::handle_dropped(std::uint64_t generation) noexcept {
  if (generation == generation_ && response_.handles > 0 && --response_.handles == 0 && !response_.ended &&
      !closed_) {
    on_handler_failure("the handler dropped its Response without ending it");
  }
  release();
}

void Connection::set_status(std::uint64_t generation, unsigned status) {
  if (!active(generation) || response_.head_sent) return;
  response_.status = status;
}

void Connection::add_header(std::uint64_t generation, std::string_view name, std::string_view value) {
  if (!active(generation) || response_.head_sent) return;
  if (iequals(name, "connection")) {
    // The server writes Connection itself; the handler can only ask to close.
    std::size_t pos = 0;
    while (pos <= value.size()) {
      std::size_t comma = value.find(',', pos);
      if (comma == std::string_view::npos) comma = value.size();
      if (iequals(trim_whitespace(value.substr(pos, comma - pos)), "close")) response_.user_close = true;
      pos = comma + 1;
    }
    return;
  }
  if (iequals(name, "date")) response_.user_date = true;
  std::string& out = response_.headers;
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void Connection::add_trailer(std::uint64_t generation, std::string_view name, std::string_view value) {
  if (!active(generation)) return;
  std::string& out = response_.trailers;
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void Connection::set_drain_handler(std::uint64_t generation, std::function<void()> handler) {
  if (!active(generation)) return;
  response_.on_drain = std::move(handler);
}

bool Connection::body_allowed() const noexcept {
  return !response_.head_request && response_.status != 204 && response_.status != 304;
}

void Connection::write_status_line(unsigned status) {
  if (status == 200) {
    output_.append("HTTP/1.1 200 OK\r\n");
    return;
  }
  char digits[3] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10)};
  output_.append("HTTP/1.1 ");
  output_.append(std::string_view(digits, 3));
  output_.append(' ');
  output_.append(reason_phrase(status));
  output_.append("\r\n");
}

void Connection::write_head(std::optional<std::uint64_t> content_length, bool streaming) {
  const Request& request = reader_.request();
  const bool http10 = request.version() < 11;
  const unsigned status = response_.status;
  const bool no_body = status == 204 || status == 304;
  bool will_close = !request.keep_alive() || response_.user_close || stop_requested_ || server_->stopping() ||
                    (peer_closed_ && reader_.unparsed() == 0);
  bool chunked = false;
  if (streaming && !no_body) {
    // HTTP/1.0 has no chunked coding: the body ends where the connection does.
    if (http10)
      will_close = true;
    else
      chunked = true;
  }
  write_status_line(status);
  if (!response_.user_date) output_.append(server_->date_line());
  if (!no_body) {
    if (content_length) {
      char digits[24];
      const auto result = std::to_chars(digits, digits + sizeof digits, *content_length);
      output_.append("Content-Length: ");
      output_.append(std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
      output_.append("\r\n");
    } else if (chunked) {
      output_.append("Transfer-Encoding: chunked\r\n");
    }
  }
  if (will_close)
    output_.append("Connection: close\r\n");
  else if (http10)
    output_.append("Connection: keep-alive\r\n");
  output_.append(response_.headers);
  output_.append("\r\n");
  response_.head_sent = true;
  response_.chunked = chunked;
  response_.will_close = will_close;
}

void Connection::write_chunk(std::string_view data) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, data.size(), 16);
  output_.append(std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
  output_.append("\r\n");
  output_.append(data);
  output_.append("\r\n");
}

void Connection::send_error(unsigned status) {
  linger_needed_ = true;  // the client may still be sending the refused request
  const std::string_view reason = reason_phrase(status);
  write_status_line(status);
  output_.append(server_->date_line());
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, reason.size() + 1);
  output_.append("Content-Type: text/plain\r\nContent-Length: ");
  output_.append(std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
  output_.append("\r\nConnection: close\r\n\r\n");
  output_.append(reason);
  output_.append('\n');
}

bool Connection::write_body(std::uint64_t generation, std::string_view chunk) {
  if (!active(generation)) return false;
  if (!response_.head_sent) write_head(std::nullopt, true);
  if (!chunk.empty() && body_allowed()) {
    if (response_.chunked)
      write_chunk(chunk);
    else
      output_.append(chunk);
  }
  if (!in_batch_) flush();
  if (closed_) return false;
  if (output_full()) {
    response_.drain_wanted = true;
    return false;
  }
  return true;
}

void Connection::end_response(std::uint64_t generation, std::string_view body, std::string* owned) {
  if (!active(generation)) return;
  const std::string_view data = owned ? std::string_view(*owned) : body;
  if (!response_.head_sent) {
    write_head(data.size(), false);
    if (body_allowed() && !data.empty()) {
      if (owned)
        output_.append_owned(std::move(*owned));
      else
        output_.append(data);
    }
  } else if (body_allowed()) {
    if (response_.chunked) {
      if (!data.empty()) write_chunk(data);
      output_.append("0\r\n");
      output_.append(response_.trailers);
      output_.append("\r\n");
    } else if (!data.empty()) {
      output_.append(data);
    }
  }
  response_.ended = true;
  if (response_.will_close) {
    closing_ = true;
    if (!request_complete_) linger_needed_ = true;  // the rest of the body is on its way
  }
  response_done();
}

// ---------------------------------------------------------------------------
// Writing

void Connection::flush() {
  if (closed_ || waiting_write_) return;
  // A few attempts: a partial write means the socket is full and the next would block.
  for (int attempt = 0; attempt < 8 && !output_.empty(); ++attempt) {
    output_.buffers(write_buffers_);
    error_code ec;
    ++server_->stats().writes;
    const std::size_t written = socket().write_some(write_buffers_, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec == asio::error::interrupted) continue;
    if (ec) {
      close_now();
      return;
    }
    output_.consume(written);
    write_deadline_ = server_->now() + server_->options().write_timeout;
  }
  if (!output_.empty()) {
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
    if (!closed_) {
      if (ec) {
        close_now();
      } else {
        server_->refresh_clock();
        flush();
        // Requests left unparsed while the output was full.
        if (!closed_ && !waiting_write_ && !output_full()) resume();
      }
    }
    release();
  });
}

void Connection::output_drained() {
  if (closing_) {
    begin_linger();
    return;
  }
  output_.release_memory(std::size_t{64} * 1024);
  // The idle time starts once the last response is out; during a graceful stop the
  // grace's end stands.
  if (read_timer_ == ReadTimer::idle && !stop_requested_)
    read_deadline_ = server_->now() + server_->options().idle_timeout;
  if (response_.drain_wanted && response_.on_drain && !response_.ended) {
    response_.drain_wanted = false;
    auto handler = std::move(response_.on_drain);
    response_.on_drain = nullptr;
    handler();
  }
}

void Connection::begin_linger() {
  if (lingering_ || closed_) return;
  closing_ = true;
  error_code ec;
  if (!linger_needed_ && reader_.unparsed() == 0 && socket().available(ec) == 0 && !ec) {
    // Nothing unread and no reason to expect more (no refused or half-read request):
    // a plain close sends the FIN after the queued response, like nginx's heuristic.
    close_now();
    return;
  }
  lingering_ = true;
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
                            release();
                          });
}

}  // namespace multinode::http::detail

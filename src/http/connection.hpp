// One HTTP/1.1 connection: reads into its RequestReader, runs the handler for
// each request in turn, gathers the responses of a batch of pipelined requests
// and writes them with one writev. The bytes come from serializer.hpp, the
// response in hand is a ResponseState (response_state.hpp).
//
// Callbacks, not coroutines: one read handler per batch, writes attempted at once
// with non-blocking writev (waiting for writability only when the socket is full).
// Lifetime is an intrusive count (single-threaded): the server's list while open,
// each pending asynchronous operation, each Response handle.
#pragma once

#include <multinode/http.hpp>

#include "common/intrusive_list.hpp"
#include "http/exchange_state.hpp"
#include "http/output.hpp"
#include "http/parser.hpp"
#include "http/response_state.hpp"
#include "http/server_impl.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace multinode::http::detail {

class Connection {
 public:
  Connection(std::shared_ptr<ServerImpl> server, boost::asio::ip::tcp::socket socket);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();

  // The intrusive count: the connection deletes itself when the last reference goes.
  void add_ref() noexcept { ++refs_; }
  void drop_ref() noexcept {
    if (--refs_ == 0) delete this;
  }

  // --- for the server ---
  void check_deadlines(Clock::time_point now);
  void on_server_stop();
  void close_now() noexcept;
  // The io_context is going away: close, and destroy the socket now.
  void destroy_io_objects() noexcept;
  bool closed() const noexcept { return state_ == State::closed; }
  // The server's list of live connections (ServerImpl::Connections); only the list touches it.
  multinode::detail::ListHook<Connection> list_hook_;

  // --- for Response handles ---
  void handle_added(std::uint64_t generation) noexcept;
  void handle_dropped(std::uint64_t generation) noexcept;
  bool active(std::uint64_t generation) const noexcept {
    return generation == generation_ && held_ && !held_->response.finished() && !closed();
  }
  bool response_ended(std::uint64_t generation) const noexcept {
    return generation != generation_ || !held_ || held_->response.finished();
  }
  bool open() const noexcept { return !closed(); }
  void set_status(std::uint64_t generation, unsigned status);
  void add_header(std::uint64_t generation, std::string_view name, std::string_view value);
  void add_trailer(std::uint64_t generation, std::string_view name, std::string_view value);
  bool write_body(std::uint64_t generation, std::string_view chunk);
  void end_response(std::uint64_t generation, std::string_view body, std::string* owned);
  void set_drain_handler(std::uint64_t generation, std::function<void()> handler);
  std::optional<Handover> take_over(std::uint64_t generation, TakenOver& owner, unsigned status);

 private:
  ~Connection();

  // Where the connection is in its life; it only moves down this list.
  enum class State : std::uint8_t {
    open,       // reading requests and answering them
    closing,    // no further request: what is queued goes out, then lingering or closed
    lingering,  // all sent, our side shut down: reading and discarding until the client closes
    closed,     // socket closed; the object lives while operations or handles hold it
  };

  // How far the exchange in hand (one request and its response) has gone.
  enum class Exchange : std::uint8_t {
    none,       // between requests
    receiving,  // the head is read, the body is arriving; the handler waits for it whole
    streaming,  // the handler has the request (Options::stream_body) while its body arrives
    answered,   // the response ended, the request's body still arrives
    awaiting,   // the request is whole; the handler has not ended its response yet
    done,       // the request is whole and answered: finish_exchange() is next (unless closing)
  };

  enum class ReadTimer : std::uint8_t { none, head, body, idle, linger };

  void read();
  void wait_readable();
  void on_readable();
  void on_read(const boost::system::error_code& ec, std::size_t size);
  void on_peer_closed();
  bool process();
  void resume();
  void on_head();
  void on_complete();
  void dispatch();
  void on_bad_request();
  void on_handler_failure(const char* what);
  void abandon_response(unsigned error_status);
  void response_done();
  void finish_exchange();
  void close_after_output() noexcept;
  void drop_callbacks() noexcept;
  void update_read_timer();
  bool dispatched() const noexcept { return exchange_ != Exchange::none && exchange_ != Exchange::receiving; }
  bool output_full() const noexcept {
    return held_ && held_->output.size() >= server_->options().write_high_water;
  }

  // The state held while something is in hand (exchange_state.hpp): taken from the
  // server's pool when bytes arrive, given back between requests. The accessors
  // below need it; the queries after them answer for a connection without one too.
  RequestReader& reader() noexcept { return held_->reader; }
  OutputQueue& output() noexcept { return held_->output; }
  ResponseState& response() noexcept { return held_->response; }
  bool between_requests() const noexcept { return !held_ || held_->reader.between_requests(); }
  ReadPhase read_phase() const noexcept { return held_ ? held_->reader.phase() : ReadPhase::idle; }
  std::size_t unparsed() const noexcept { return held_ ? held_->reader.unparsed() : 0; }
  bool output_empty() const noexcept { return !held_ || held_->output.empty(); }
  void take_state();
  // Between requests: gives the buffers back, and the whole state once no output is left.
  void release_state() noexcept;

  // Response output (the bytes: serializer.hpp).
  void write_head(std::optional<std::uint64_t> content_length, bool streaming);
  void send_error(unsigned status);
  // A 2xx to CONNECT that did not take the connection over (RFC 9110 9.3.6 forbids framing it).
  bool refused_connect_success();

  void flush();
  void wait_writable();
  void output_drained();
  void begin_linger();
  void linger_read();

  boost::asio::ip::tcp::socket& socket() noexcept { return *socket_; }

  std::shared_ptr<ServerImpl> server_;
  // Reset by destroy_io_objects() when the io_context goes before the last handle.
  std::optional<boost::asio::ip::tcp::socket> socket_;
  unsigned refs_ = 0;
  std::unique_ptr<ExchangeState> held_;

  State state_ = State::open;
  Exchange exchange_ = Exchange::none;
  ReadTimer read_timer_ = ReadTimer::none;
  // Facts independent of the states above (any combination occurs):
  bool reading_ = false;        // an async read or wait is pending (in open and lingering alike)
  bool waiting_write_ = false;  // waiting for writability; a read may be pending at the same time
  bool in_batch_ = false;       // process() is on the stack: handlers it runs must not re-enter it
  bool peer_closed_ = false;    // the client shut down its side; we may still be answering
  // The client may still send a refused or half-read request: drain it before closing.
  bool linger_needed_ = false;

  std::uint64_t generation_ = 0;  // counts dispatched requests; a Response handle names one

  Clock::time_point read_deadline_{};
  Clock::time_point write_deadline_{};
  std::size_t lingered_bytes_ = 0;
};

}  // namespace multinode::http::detail

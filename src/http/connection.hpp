// One HTTP/1.1 connection: reads into its RequestReader, runs the handler for
// each request in turn, gathers the responses of a batch of pipelined requests
// and writes them with one writev.
//
// Callbacks, not coroutines: one read handler per batch, writes attempted at once
// with non-blocking writev (waiting for writability only when the socket is full).
// Lifetime is an intrusive count (single-threaded): the server's list while open,
// each pending asynchronous operation, each Response handle.
#pragma once

#include <multinode/http.hpp>

#include "http/output.hpp"
#include "http/parser.hpp"
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

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  // --- for the server ---
  void check_deadlines(Clock::time_point now);
  void on_server_stop();
  void close_now() noexcept;
  // The io_context is going away: destroy the socket now (the connection is closed).
  void release_socket() noexcept;
  bool closed() const noexcept { return closed_; }
  Connection* previous_ = nullptr;  // the server's list of live connections
  Connection* next_ = nullptr;

  // --- for Response handles ---
  void handle_added(std::uint64_t generation) noexcept;
  void handle_dropped(std::uint64_t generation) noexcept;
  bool active(std::uint64_t generation) const noexcept {
    return generation == generation_ && !response_.ended && !closed_;
  }
  bool response_ended(std::uint64_t generation) const noexcept {
    return generation != generation_ || response_.ended;
  }
  bool open() const noexcept { return !closed_; }
  void set_status(std::uint64_t generation, unsigned status);
  void add_header(std::uint64_t generation, std::string_view name, std::string_view value);
  void add_trailer(std::uint64_t generation, std::string_view name, std::string_view value);
  bool write_body(std::uint64_t generation, std::string_view chunk);
  void end_response(std::uint64_t generation, std::string_view body, std::string* owned);
  void set_drain_handler(std::uint64_t generation, std::function<void()> handler);

 private:
  ~Connection();

  enum class ReadTimer { none, head, body, idle, linger };

  void read();
  void on_read(const boost::system::error_code& ec, std::size_t size);
  void on_peer_closed();
  void process();
  void resume();
  void on_head();
  void on_complete();
  void dispatch();
  void on_bad_request();
  void on_handler_failure(const char* what);
  void response_done();
  void finish_exchange();
  void drop_callbacks() noexcept;
  void update_read_timer();
  bool awaiting_application() const noexcept { return request_complete_ && !response_done_; }
  bool output_full() const noexcept { return output_.size() >= server_->options().write_high_water; }

  // Response output.
  void write_head(std::optional<std::uint64_t> content_length, bool streaming);
  void write_status_line(unsigned status);
  void write_chunk(std::string_view data);
  void send_error(unsigned status);
  bool body_allowed() const noexcept;

  void flush();
  void wait_writable();
  void output_drained();
  void begin_linger();
  void linger_read();

  boost::asio::ip::tcp::socket& socket() noexcept { return *socket_; }

  std::shared_ptr<ServerImpl> server_;
  // Reset by release_socket() when the io_context goes before the last handle.
  std::optional<boost::asio::ip::tcp::socket> socket_;
  unsigned refs_ = 0;
  RequestReader reader_;
  OutputQueue output_;
  std::vector<boost::asio::const_buffer> write_buffers_;

  bool closed_ = false;
  bool reading_ = false;
  bool waiting_write_ = false;
  bool in_batch_ = false;
  bool paused_for_output_ = false;  // requests wait in the buffer until the output drains
  bool peer_closed_ = false;    // the client shut down its side
  bool closing_ = false;        // no further request: send what is queued, then linger and close
  bool lingering_ = false;
  bool linger_needed_ = false;  // closing after a refused or half-read request: drain before closing
  bool stop_requested_ = false; // the server is stopping: the request in hand is the last

  // The exchange in hand.
  std::uint64_t generation_ = 0;  // counts dispatched requests; a Response handle names one
  bool request_complete_ = false;
  bool response_done_ = true;
  bool dispatched_ = false;

  struct ResponseState {
    unsigned status = 200;
    std::string headers;   // "Name: value\r\n" lines the handler added
    std::string trailers;  // same, for after a chunked body
    unsigned handles = 0;
    bool head_sent = false;
    bool ended = false;
    bool chunked = false;
    bool will_close = false;
    bool user_close = false;
    bool user_date = false;
    bool head_request = false;
    bool drain_wanted = false;  // write() returned false: on_drain runs once the output is sent
    std::function<void()> on_drain;
  } response_;

  ReadTimer read_timer_ = ReadTimer::none;
  Clock::time_point read_deadline_{};
  Clock::time_point write_deadline_{};
  std::size_t lingered_bytes_ = 0;
};

}  // namespace multinode::http::detail

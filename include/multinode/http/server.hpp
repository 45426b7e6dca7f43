// The HTTP/1.1 server that listen() runs in every serving process, and its counters.
#pragma once

#include <multinode/http/options.hpp>
#include <multinode/http/request.hpp>
#include <multinode/http/response.hpp>
#include <multinode/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace multinode::http {

namespace detail {
class ServerImpl;
}  // namespace detail

// Counters of this process's server (since start()).
struct Stats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t requests = 0;         // requests handed to the handler
  std::uint64_t bad_requests = 0;     // requests refused by the parser or the policy
  std::uint64_t header_timeouts = 0;  // heads not complete within header_timeout
  std::uint64_t body_timeouts = 0;
  std::uint64_t idle_timeouts = 0;
  std::uint64_t write_timeouts = 0;
  std::uint64_t handler_errors = 0;  // handlers that threw or dropped a response unanswered
  std::uint64_t reads = 0;           // read completions carrying request bytes
  std::uint64_t writes = 0;          // writev calls: the responses of one batch share one
  // Connections holding an input (output) buffer right now: one with a request in
  // hand (a response going out); a connection between requests holds none.
  std::uint64_t input_buffers = 0;
  std::uint64_t output_buffers = 0;
  // Connections holding the state of a request in hand (its parser, the Request, the
  // response and output queue); a connection between requests holds none either.
  std::uint64_t exchange_states = 0;
};

class Server final : public multinode::Server {
 public:
  using Handler = std::function<void(Request&, Response&)>;

  explicit Server(Handler handler, Options options = {});
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on every listener; called once per serving process.
  void start(boost::asio::io_context& io, std::vector<boost::asio::ip::tcp::acceptor> listeners) override;
  // Graceful stop: stops accepting, closes idle connections at once; each
  // connection with a request in hand answers it with `Connection: close` and closes.
  void stop() override;
  // After stop(): `done` runs (on the io_context) once every connection is closed.
  void on_drained(std::function<void()> done) override;
  // The io_context is going away: closes every connection and destroys every Asio
  // object of this server now (Response handles kept by the application go stale).
  void destroy_io_objects() noexcept override;

  ServerCounters counters() const noexcept override;

  const Options& options() const noexcept;
  const Stats& stats() const noexcept;

 private:
  std::shared_ptr<detail::ServerImpl> impl_;
};

}  // namespace multinode::http

// The Beast-only reference of bench/websocket.sh: a WebSocket echo server written
// directly on Boost.Beast and Asio, without multinode, in the plainest way Beast's
// own examples show (websocket::stream<tcp_stream>, a flat_buffer per connection,
// read, write the message back, read again). It tells how much of the echo and
// idle figures is Beast's and how much is multinode's.
//
//   websocket_beast [--port N] [--nodes N] [--host ADDRESS]
//
// --nodes processes: this one binds the listening socket and forks the others
// after it; all of them accept on it, as multinode's shared balancing does.
// SIGTERM or SIGINT stops every process.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : ws_(std::move(socket)) {}

  void start() {
    ws_.set_option(beast::websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept([self = shared_from_this()](beast::error_code error) {
      if (!error) self->read();
    });
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      if (error) return;  // closed, or a protocol error Beast already answered
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(self->buffer_.data(), [self](beast::error_code write_error, std::size_t) {
        if (write_error) return;
        self->buffer_.consume(self->buffer_.size());
        self->read();
      });
    });
  }

  beast::websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

void accept_loop(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted) return;
    if (!error) {
      socket.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(socket))->start();
    }
    accept_loop(acceptor);
  });
}

// One serving process: its own io_context (made after the fork) on the shared socket.
int serve(int listen_fd) {
  asio::io_context io(1);
  tcp::acceptor acceptor(io, tcp::v4(), listen_fd);
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&io](beast::error_code, int) { io.stop(); });
  accept_loop(acceptor);
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 8080;
  unsigned nodes = 2;
  std::string host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (arg == "--nodes" && has_value) {
      nodes = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (arg == "--host" && has_value) {
      host = argv[++i];
    } else {
      std::cerr << "usage: websocket_beast [--port N] [--nodes N] [--host ADDRESS]\n";
      return 2;
    }
  }
  if (nodes == 0) {
    std::cerr << "websocket_beast: --nodes must be at least 1\n";
    return 2;
  }

  int listen_fd = -1;
  try {
    asio::io_context setup;
    tcp::acceptor acceptor(setup, tcp::endpoint(asio::ip::make_address(host), port));
    acceptor.listen(4096);
    listen_fd = acceptor.release();
  } catch (const std::exception& error) {
    std::cerr << "websocket_beast: cannot listen on " << host << ":" << port << ": " << error.what() << "\n";
    return 1;
  }

  std::vector<pid_t> children;
  for (unsigned i = 1; i < nodes; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("websocket_beast: fork");
      for (const pid_t child : children) ::kill(child, SIGTERM);
      return 1;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the first process
      return serve(listen_fd);
    }
    children.push_back(pid);
  }
  const int status = serve(listen_fd);
  for (const pid_t child : children) ::kill(child, SIGTERM);
  for (const pid_t child : children) ::waitpid(child, nullptr, 0);
  return status;
}

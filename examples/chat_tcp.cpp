// A line-based TCP chat on several processes: a line typed on a connection
// served by any process reaches every other connection of every process. Each
// process relays its connections' lines to the others over the mesh.
//
//   chat_tcp [--port N] [--nodes N] [--host ADDRESS] [--max-line BYTES]
//
// Try it: chat_tcp --port 7000, then `nc localhost 7000` in two terminals.
#include <multinode/multinode.hpp>

#include "command_line.hpp"

#include <boost/asio.hpp>

#include <deque>
#include <iostream>
#include <memory>
#include <set>
#include <string>

namespace asio = boost::asio;

namespace {

class Session;
using Sessions = std::set<std::shared_ptr<Session>>;

// One connection: reads lines, queues what others said.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // A client that reads nothing must not make this process buffer without end.
  static constexpr std::size_t max_queued_bytes = std::size_t{1024} * 1024;

  Session(asio::ip::tcp::socket socket, Sessions& sessions, std::size_t max_line,
          std::function<void(const std::string&, Session*)> on_line)
      : socket_(std::move(socket)), sessions_(sessions), max_line_(max_line), on_line_(std::move(on_line)) {}

  void start(const std::string& greeting) {
    sessions_.insert(shared_from_this());
    deliver(greeting);
    read();
  }

  void deliver(const std::string& line) {
    if (queued_bytes_ + line.size() > max_queued_bytes) return close();
    queued_bytes_ += line.size();
    queue_.push_back(line);
    if (queue_.size() == 1) write();
  }

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    sessions_.erase(shared_from_this());
  }

 private:
  void read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(input_, max_line_), '\n',
                           [self = shared_from_this()](boost::system::error_code error, std::size_t n) {
                             if (error) return self->close();  // closed, broken, or a line over --max-line
                             std::string line = self->input_.substr(0, n);
                             self->input_.erase(0, n);
                             self->on_line_(line, self.get());
                             self->read();
                           });
  }

  void write() {
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                        if (error) return self->close();
                        self->queued_bytes_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        if (!self->queue_.empty()) self->write();
                      });
  }

  asio::ip::tcp::socket socket_;
  Sessions& sessions_;
  std::size_t max_line_;
  std::function<void(const std::string&, Session*)> on_line_;
  std::string input_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 7000, .nodes = 2};
  std::size_t max_line = 4096;
  CLI::App app{"A line chat over TCP on several processes", "chat_tcp"};
  examples::add_listen_options(app, options);
  app.add_option("--max-line", max_line, "Longest line, in bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  if (const auto status = examples::parse(app, argc, argv)) return *status;

  Sessions sessions;
  std::string greeting;
  multinode::Nodes* nodes = nullptr;  // set by listen() below; the server must outlive it

  // To every local connection but the one it came from.
  auto deliver_here = [&sessions](const std::string& line, Session* from) {
    for (auto& session : Sessions(sessions)) {
      if (session.get() != from) session->deliver(line);
    }
  };
  // A line typed here: to this process's connections and to every other process.
  auto on_line = [&](const std::string& line, Session* from) {
    deliver_here(line, from);
    for (auto& peer : nodes->peers()) {
      auto framed = multinode::frame_stream(peer);
      std::error_code error;
      // Lines need not be UTF-8; those that are not go as binary frames.
      if (!framed.send(multinode::Message::text_view(line), error) && error) framed.send_binary(line);
    }
  };

  multinode::tcp::Server server([&](asio::ip::tcp::socket socket) {
    std::make_shared<Session>(std::move(socket), sessions, max_line, on_line)->start(greeting);
  });
  auto mesh = multinode::listen(options, server);
  nodes = &mesh;
  greeting = "welcome to node " + std::to_string(nodes->id()) + "\n";

  nodes->on_node([&](multinode::Stream stream) {
    multinode::frame_stream(stream).on_message(
        [&](const multinode::Message& message) { deliver_here(std::string(message.bytes()), nullptr); });
  });
  nodes->on_stop([&] {
    for (auto& session : Sessions(sessions)) session->close();
  });
  const int status = nodes->run();
  sessions.clear();  // while the io_context their sockets belong to still exists
  return status;
}

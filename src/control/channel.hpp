// The control channel between the master and one worker: a SOCK_SEQPACKET
// socketpair carrying fixed 24-byte records, each with at most one fd passed by
// SCM_RIGHTS. docs/protocol.md describes every byte.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <system_error>

namespace multinode::detail {

enum class RecordType : std::uint16_t {
  ready = 1,          // worker -> master: serving; value = worker's pid
  stop = 2,           // master -> worker: stop gracefully
  peer = 3,           // master -> worker, with an fd: a mesh stream to process peer_id in slot peer_slot
  stopping = 4,       // worker -> master: stopping on a signal of its own; value = the signal number
  recycle = 5,        // worker -> master: reached max_requests, replace me (rolling path); value = requests
  stats_request = 6,  // master -> worker: send your server counters; value = the request's serial
  stats = 7,  // worker -> master: peer_id = that serial, peer_slot = connections open, value = requests
  // The mesh of `multinode run` workers (a SOCK_STREAM connection, no fds):
  join = 8,       // worker -> supervisor: peer_id/peer_slot = its own, value = its pid
  master = 9,     // supervisor -> worker: you hold the master role from now on; value = 1
  watchdog = 10,  // worker -> supervisor: a heartbeat (as WATCHDOG=1); peer_id/peer_slot = its own
};

struct Record {
  RecordType type = RecordType::ready;
  std::uint32_t peer_id = 0;
  std::uint32_t peer_slot = 0;
  std::uint64_t value = 0;
};

constexpr std::size_t record_size = 24;

// Little-endian wire form; decode returns false for a record that is not record_size bytes
// or whose type is unknown.
void encode_record(const Record& record, unsigned char (&out)[record_size]);
bool decode_record(const unsigned char* data, std::size_t size, Record& record);

class ControlChannel {
 public:
  using RecordHandler = std::function<void(const Record& record, int fd)>;
  using ClosedHandler = std::function<void(std::error_code)>;

  // Takes ownership of fd (a SOCK_SEQPACKET socket).
  ControlChannel(boost::asio::io_context& io, int fd);
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // Starts reading. on_record gets every record; a passed fd is owned by the handler
  // (-1 when none). on_closed runs once: with an empty code when the other side closed,
  // else with the error.
  void start(RecordHandler on_record, ClosedHandler on_closed);
  // Queues a record; fd_to_pass (owned from now on, closed once sent) travels with it.
  void send(const Record& record, int fd_to_pass = -1);
  void close();
  bool is_open() const noexcept { return socket_.is_open(); }

 private:
  struct Pending {
    Record record;
    int fd;
  };
  void wait_readable();
  void read_records();
  void flush();
  void fail(std::error_code error);

  boost::asio::posix::stream_descriptor socket_;
  RecordHandler on_record_;
  ClosedHandler on_closed_;
  std::deque<Pending> pending_;
  bool waiting_writable_ = false;
  bool closed_reported_ = false;
};

}  // namespace multinode::detail

// The control channel between the master and one worker: a SOCK_SEQPACKET
// socketpair carrying fixed 24-byte records, each with at most one fd passed by
// SCM_RIGHTS. docs/protocol.md describes every byte.
#pragma once

#include <multinode/bridge.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <system_error>
#include <vector>

namespace multinode::detail {

enum class RecordType : std::uint16_t {
  ready = 1,          // worker -> master: serving; value = worker's pid
  stop = 2,           // master -> worker: stop gracefully
  peer = 3,           // master -> worker, with an fd: a mesh stream to process peer_id in slot peer_slot
  stopping = 4,       // worker -> master: stopping on a signal of its own; value = the signal number
  recycle = 5,        // worker -> master: reached max_requests, replace me (rolling path); value = requests
  stats_request = 6,  // master -> worker: send your server counters; value = the request's serial
  stats = 7,  // worker -> master: peer_id = that serial, peer_slot = connections open, value = requests
  // The mesh of `multinode run` workers (docs/protocol.md), on a stream socket, never with an fd:
  join = 8,           // worker -> supervisor: first record; peer_id/peer_slot = its own, value = its pid
  master = 9,         // supervisor -> worker: you hold the master role from now on (value 1)
  watchdog = 10,      // worker -> supervisor: a heartbeat, as WATCHDOG=1 on NOTIFY_SOCKET
  bridge_stats = 11,  // worker -> master, before its stats: peer_id = that serial, peer_slot = the
                      // BridgeStatsField, value = that figure of the worker's bridge (Options::bridge)
  // Warm standbys of `multinode run --standby` (docs/protocol.md), on the mesh's stream:
  standby = 12,  // standby -> supervisor: first record instead of join; peer_id = its id, slot 0, value = pid
  promote = 13,  // supervisor -> standby: fill slot peer_slot from now on; value 1: with the master role
};

// What a bridge_stats record carries: one figure of BridgeCounters each
// (docs/protocol.md, "Records"); a worker with a bridge sends all of them, in this order.
enum class BridgeStatsField : std::uint32_t {
  state = 0,  // value: 0 off, 1 connecting, 2 up (BridgeLinkState)
  published = 1,
  received = 2,
  dropped = 3,
  oversized = 4,
  foreign = 5,
  malformed = 6,
  bad_replies = 7,
  reconnects = 8,
  queued_bytes = 9,
};
constexpr std::uint32_t bridge_stats_fields = 10;

struct Record {
  RecordType type = RecordType::ready;
  std::uint32_t peer_id = 0;
  std::uint32_t peer_slot = 0;
  std::uint64_t value = 0;
};

constexpr std::size_t record_size = 24;

// Little-endian wire form; decode returns false for a record that is not record_size bytes,
// of an unknown type, or a bridge_stats record of an unknown field or link state.
void encode_record(const Record& record, unsigned char (&out)[record_size]);
bool decode_record(const unsigned char* data, std::size_t size, Record& record);

// The bridge_stats records of a worker's figures, answering the stats_request of that serial.
std::vector<Record> bridge_stats_records(const BridgeCounters& counters, std::uint32_t serial);
// Sets the figure a decoded bridge_stats record carries in counters (rejected: the sum of the four reasons).
void apply_bridge_stats(const Record& record, BridgeCounters& counters);

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

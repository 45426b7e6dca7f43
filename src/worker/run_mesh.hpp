// A worker of `multinode run` on the library: its end of the mesh broker
// (docs/protocol.md, "The mesh for workers of `multinode run`"). It listens on
// $MULTINODE_MESH/<id>.sock, connects to the supervisor's supervisor.sock and
// sends `join`; for each `peer` record it connects to that member's socket and
// writes the hello, and it takes the hello of each member that connects to it
// later. Every stream is handed to the host (the runtime, which makes it a
// multinode::Stream) after the hello, so the user never sees it. A `master`
// record gives the host the master role; the end of the supervisor's connection
// stops the worker. In worker/ beside the control channel's other end: it uses
// only control's records and common.
#pragma once

#include <multinode/node_id.hpp>

#include "common/peer_host.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace multinode::detail {

// The hello a connecting member writes first: a mesh control frame (type 4,
// length 9: opcode 0x02, u32 LE id, u32 LE slot), 17 bytes on the wire.
inline constexpr std::size_t mesh_hello_size = 17;
struct MeshHello {
  std::uint32_t id = 0;
  std::uint32_t slot = 0;
};
std::array<unsigned char, mesh_hello_size> encode_mesh_hello(const MeshHello& hello) noexcept;
// nullopt unless the bytes are exactly a hello (size, frame type, length, opcode).
std::optional<MeshHello> decode_mesh_hello(const unsigned char* data, std::size_t size) noexcept;

class RunMesh {
 public:
  // What the mesh needs from the worker it runs in (core's runtime).
  // PeerHost: add_peer takes a connected stream to a member, its hello done.
  class Host : public virtual PeerHost {
   public:
    // The supervisor's `master` record: this worker holds the master role from now on.
    virtual void master_role_granted() = 0;

   protected:
    ~Host() = default;
  };

  // A connection that has not sent its hello within this is closed.
  static constexpr std::chrono::seconds hello_timeout{5};

  // directory: $MULTINODE_MESH.
  RunMesh(Host& host, std::string directory);
  ~RunMesh();
  RunMesh(const RunMesh&) = delete;
  RunMesh& operator=(const RunMesh&) = delete;

  // Listens on <id>.sock, connects to supervisor.sock and sends `join`, then reads
  // the supervisor's records. Throws std::system_error saying what failed and what to do.
  void start();
  // Stops accepting, closes the connections still without a hello and the
  // supervisor's connection, removes <id>.sock. The streams handed over are the host's.
  void close();

 private:
  struct Pending;
  void wait_accept();
  void accept_ready();
  void read_hello(std::uint64_t key);
  void drop_pending(std::uint64_t key);
  void read_records();
  void handle_record(const unsigned char* data);
  void connect_to(NodeId peer, unsigned peer_slot);
  std::string socket_path(const std::string& name) const;

  Host& host_;
  std::string directory_;
  std::string own_path_;
  bool closed_ = false;
  std::unique_ptr<boost::asio::posix::stream_descriptor> listener_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> supervisor_;
  std::array<unsigned char, std::size_t{24} * 16> input_{};  // whole records from supervisor.sock
  std::size_t input_size_ = 0;
  std::map<std::uint64_t, std::unique_ptr<Pending>> pending_;  // accepted, hello not yet read
  std::uint64_t next_key_ = 0;
};

}  // namespace multinode::detail

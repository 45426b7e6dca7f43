// The worker's end of the `multinode run` mesh broker (run_mesh.hpp).
#include "worker/run_mesh.hpp"

#include "common/log.hpp"
#include "control/channel.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace multinode::detail {
namespace {

constexpr unsigned char hello_frame_type = 4;  // a mesh control frame (docs/protocol.md, "Frames")
constexpr unsigned char hello_opcode = 0x02;
constexpr std::uint32_t hello_length = 9;  // opcode, id, slot

void put32(unsigned char* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get32(const unsigned char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// sockaddr_un for path; false when it does not fit sun_path with its NUL.
bool make_address(const std::string& path, sockaddr_un& address, socklen_t& length) noexcept {
  address = {};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, path.data(), path.size());
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

bool write_whole(int fd, const unsigned char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

std::array<unsigned char, mesh_hello_size> encode_mesh_hello(const MeshHello& hello) noexcept {
  std::array<unsigned char, mesh_hello_size> out{};
  out[0] = hello_frame_type;
  put32(out.data() + 4, hello_length);
  out[8] = hello_opcode;
  put32(out.data() + 9, hello.id);
  put32(out.data() + 13, hello.slot);
  return out;
}

std::optional<MeshHello> decode_mesh_hello(const unsigned char* data, std::size_t size) noexcept {
  if (data == nullptr || size != mesh_hello_size) return std::nullopt;
  if (data[0] != hello_frame_type || data[1] != 0 || data[2] != 0 || data[3] != 0) return std::nullopt;
  if (get32(data + 4) != hello_length || data[8] != hello_opcode) return std::nullopt;
  return MeshHello{get32(data + 9), get32(data + 13)};
}

// An accepted connection until its hello: exactly 17 bytes are read, so that
// nothing the peer sends after it is taken from the stream the user gets.
struct RunMesh::Pending {
  Pending(boost::asio::io_context& io, int fd) : socket(io, fd), timer(io) {}
  boost::asio::posix::stream_descriptor socket;
  boost::asio::steady_timer timer;
  std::array<unsigned char, mesh_hello_size> hello{};
  std::size_t got = 0;
};

RunMesh::RunMesh(Host& host, std::string directory) : host_(host), directory_(std::move(directory)) {}

RunMesh::~RunMesh() {
  close();
}

std::string RunMesh::socket_path(const std::string& name) const {
  return directory_ + "/" + name;
}

void RunMesh::start() {
  static_assert(sizeof(input_) % record_size == 0);
  if (directory_.empty() || directory_.front() != '/') {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "MULTINODE_MESH='" + directory_ +
                                "' is not an absolute path (it is set by multinode run; unset it to run "
                                "without the mesh)");
  }
  own_path_ = socket_path(std::to_string(host_.id()) + ".sock");
  sockaddr_un own{};
  socklen_t own_length = 0;
  sockaddr_un broker{};
  socklen_t broker_length = 0;
  if (!make_address(own_path_, own, own_length) ||
      !make_address(socket_path("supervisor.sock"), broker, broker_length)) {
    throw std::system_error(std::make_error_code(std::errc::filename_too_long),
                            "MULTINODE_MESH='" + directory_ + "' is too long for a Unix socket path (" +
                                std::to_string(sizeof own.sun_path - 1) +
                                " bytes with the socket's name): give multinode run a shorter directory");
  }
  auto fail = [this](const std::string& what, int error) {
    throw std::system_error(error, std::generic_category(),
                            what + " (MULTINODE_MESH=" + directory_ +
                                "; is the multinode run that started this worker still running?)");
  };

  // Listening first: the join says the socket is there.
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listener < 0) fail("cannot create the mesh socket", errno);
  ::unlink(own_path_.c_str());  // a file left by a killed worker of the same id cannot exist; be safe
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&own), own_length) != 0 ||
      ::listen(listener, SOMAXCONN) != 0) {
    const int error = errno;
    ::close(listener);
    fail("cannot listen on " + own_path_, error);
  }
  listener_ = std::make_unique<boost::asio::posix::stream_descriptor>(host_.io(), listener);

  const int connection = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connection < 0) fail("cannot create a socket to the supervisor", errno);
  supervisor_ = std::make_unique<boost::asio::posix::stream_descriptor>(host_.io(), connection);
  int result = 0;
  do {
    result = ::connect(connection, reinterpret_cast<const sockaddr*>(&broker), broker_length);
  } while (result != 0 && errno == EINTR);
  if (result != 0) fail("cannot connect to " + socket_path("supervisor.sock"), errno);
  unsigned char join[record_size];
  encode_record(Record{RecordType::join, host_.id(), host_.slot(), static_cast<std::uint64_t>(::getpid())},
                join);
  if (!write_whole(connection, join, sizeof join))
    fail("cannot send the join record to the supervisor", errno);
  supervisor_->non_blocking(true);
  log(LogLevel::debug, "joined the mesh of multinode run at ", directory_);
  read_records();
  wait_accept();
}

void RunMesh::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  if (listener_) listener_->close(ignored);
  if (supervisor_) supervisor_->close(ignored);
  pending_.clear();  // their sockets and timers close
  if (!own_path_.empty()) ::unlink(own_path_.c_str());
}

void RunMesh::read_records() {
  supervisor_->async_wait(
      boost::asio::posix::descriptor_base::wait_read, [this](boost::system::error_code error) {
        if (error == boost::asio::error::operation_aborted || closed_) return;
        const int fd = supervisor_->native_handle();
        ssize_t n = 0;
        do {
          n = ::recv(fd, input_.data() + input_size_, input_.size() - input_size_, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return read_records();
        if (n <= 0 || error) {
          if (host_.stopping()) return;
          const std::string why = n < 0 ? std::string(": ") + std::strerror(errno) : std::string();
          close();
          host_.begin_stop("the supervisor went away (its mesh connection ended" + why + ")", 0);
          return;
        }
        input_size_ += static_cast<std::size_t>(n);
        std::size_t used = 0;
        for (; input_size_ - used >= record_size; used += record_size) {
          handle_record(input_.data() + used);
          if (closed_) return;
        }
        std::memmove(input_.data(), input_.data() + used, input_size_ - used);
        input_size_ -= used;
        read_records();
      });
}

void RunMesh::handle_record(const unsigned char* data) {
  Record record;
  if (!decode_record(data, record_size, record)) {
    log(LogLevel::debug, "ignoring a record of unknown type from the supervisor");
    return;
  }
  switch (record.type) {
    case RecordType::peer:
      connect_to(record.peer_id, record.peer_slot);
      break;
    case RecordType::master:
      host_.master_role_granted();
      break;
    case RecordType::ready:
    case RecordType::stop:
    case RecordType::stopping:
    case RecordType::recycle:
    case RecordType::stats_request:
    case RecordType::stats:
    case RecordType::join:
    case RecordType::watchdog:
    case RecordType::bridge_stats:
    case RecordType::standby:
    case RecordType::promote:
      log(LogLevel::debug, "ignoring an unexpected record (type ", static_cast<unsigned>(record.type),
          ") from the supervisor");
      break;
  }
}

void RunMesh::connect_to(NodeId peer, unsigned peer_slot) {
  if (host_.stopping()) return;
  const std::string path = socket_path(std::to_string(peer) + ".sock");
  sockaddr_un address{};
  socklen_t length = 0;
  if (!make_address(path, address, length)) return;  // cannot happen: shorter ids than ours fit too
  // Non-blocking: a member whose queue is full is skipped rather than stalling this loop.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    log(LogLevel::warning, "cannot create a mesh stream to node ", peer, ": ", std::strerror(errno));
    return;
  }
  int result = 0;
  do {
    result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), length);
  } while (result != 0 && errno == EINTR);
  const auto hello = encode_mesh_hello(MeshHello{host_.id(), host_.slot()});
  // A fresh Unix stream's buffer always takes 17 bytes at once.
  if (result != 0 || !write_whole(fd, hello.data(), hello.size())) {
    log(LogLevel::debug, "no mesh stream to node ", peer, " (", path, "): ", std::strerror(errno),
        "; it has exited meanwhile");
    ::close(fd);
    return;
  }
  host_.add_peer(fd, peer, peer_slot);
}

void RunMesh::wait_accept() {
  listener_->async_wait(boost::asio::posix::descriptor_base::wait_read,
                        [this](boost::system::error_code error) {
                          if (error == boost::asio::error::operation_aborted || closed_) return;
                          accept_ready();
                          wait_accept();
                        });
}

void RunMesh::accept_ready() {
  for (int i = 0; i < 64; ++i) {  // a bounded burst per turn
    const int fd = ::accept4(listener_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        log(LogLevel::warning, "accepting on ", own_path_, ": ", std::strerror(errno));
      return;
    }
    const std::uint64_t key = next_key_++;
    auto pending = std::make_unique<Pending>(host_.io(), fd);
    pending->timer.expires_after(hello_timeout);
    pending->timer.async_wait([this, key](boost::system::error_code timer_error) {
      if (timer_error) return;
      log(LogLevel::debug, "closing a mesh connection that sent no hello within ", hello_timeout.count(),
          " s");
      drop_pending(key);
    });
    pending_.emplace(key, std::move(pending));
    read_hello(key);
  }
}

void RunMesh::drop_pending(std::uint64_t key) {
  pending_.erase(key);  // closes its socket, cancels its timer
}

void RunMesh::read_hello(std::uint64_t key) {
  const auto it = pending_.find(key);
  if (it == pending_.end()) return;
  it->second->socket.async_wait(
      boost::asio::posix::descriptor_base::wait_read, [this, key](boost::system::error_code error) {
        if (error == boost::asio::error::operation_aborted || closed_) return;
        const auto found = pending_.find(key);
        if (found == pending_.end()) return;
        Pending& p = *found->second;
        ssize_t n = 0;
        do {
          n = ::recv(p.socket.native_handle(), p.hello.data() + p.got, p.hello.size() - p.got, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return read_hello(key);
        if (n <= 0 || error) return drop_pending(key);
        p.got += static_cast<std::size_t>(n);
        if (p.got < p.hello.size()) return read_hello(key);
        const auto hello = decode_mesh_hello(p.hello.data(), p.hello.size());
        if (!hello || hello->id == host_.id()) {
          log(LogLevel::debug, "closing a mesh connection whose first bytes are not a hello");
          return drop_pending(key);
        }
        const int fd = p.socket.release();
        pending_.erase(found);
        if (host_.stopping()) {
          ::close(fd);
          return;
        }
        host_.add_peer(fd, hello->id, hello->slot);
      });
}

}  // namespace multinode::detail

// The supervisor's broker of the mesh of `multinode run` workers (mesh_broker.hpp).
#include "supervisor/mesh_broker.hpp"

#include "control/channel.hpp"

#include "common/log.hpp"

#include <boost/asio/write.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <system_error>
#include <vector>

namespace multinode::detail {
namespace {

using stream_protocol = boost::asio::local::stream_protocol;

// sun_path holds 108 bytes, the terminating NUL included.
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;
// "/<id>.sock" for the largest id (u32, 10 digits).
constexpr std::size_t member_socket_room = 1 + 10 + 5;
constexpr const char* where_documented = "docs/protocol.md, \"The mesh for workers of `multinode run`\"";

std::string record_name(std::uint16_t type) {
  switch (type) {
    case 1:
      return "ready";
    case 2:
      return "stop";
    case 3:
      return "peer";
    case 4:
      return "stopping";
    case 5:
      return "recycle";
    case 6:
      return "stats_request";
    case 7:
      return "stats";
    case 8:
      return "join";
    case 9:
      return "master";
    case 10:
      return "watchdog";
    case 11:
      return "bridge_stats";
    case 12:
      return "standby";
    case 13:
      return "promote";
    default:
      return "unknown (type " + std::to_string(type) + ")";
  }
}

// Directories mesh-PID-XXXXXX of this user in parent whose supervisor is gone: one
// that died by SIGKILL (or a second SIGTERM, whose default action is death) could
// not remove its own. A live pid is left alone, even if it is another process now.
void remove_stale(const std::string& parent) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(parent, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("mesh-", 0) != 0) continue;
    const auto dash = name.find('-', 5);
    if (dash == std::string::npos || dash == 5 || dash - 5 > 10) continue;
    const std::string digits = name.substr(5, dash - 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::stol(digits);
    struct stat info {};
    if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid())
      continue;
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code removed;
    std::filesystem::remove_all(entry.path(), removed);
    if (!removed)
      log(LogLevel::info, "removed ", entry.path().string(), ", left by supervisor pid ", pid, ", gone");
  }
}

// A private directory mesh-PID-XXXXXX in parent, or "" with why set.
std::string make_in(const std::string& parent, std::string& why) {
  remove_stale(parent);
  std::string path = parent + "/mesh-" + std::to_string(::getpid()) + "-XXXXXX";
  if (path.size() + member_socket_room > max_socket_path) {
    why = parent + " is too long a path for the workers' sockets (" + std::to_string(max_socket_path) +
          " bytes in all)";
    return {};
  }
  std::vector<char> name(path.begin(), path.end());
  name.push_back('\0');
  if (::mkdtemp(name.data()) == nullptr) {  // mode 0700
    why = "cannot create a directory in " + parent + ": " + std::strerror(errno);
    return {};
  }
  return name.data();
}

// /tmp/multinode-UID: made 0700 when missing; refused when it is not this user's own and private.
bool own_tmp_directory(const std::string& dir, std::string& why) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    why = "cannot create " + dir + ": " + std::strerror(errno);
    return false;
  }
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid() ||
      (info.st_mode & 077) != 0) {
    why = dir + " is not a private directory of this user (mode 0700): remove it";
    return false;
  }
  return true;
}

std::string make_private_directory(const std::string& near_dir) {
  std::string reasons;
  if (!near_dir.empty() && near_dir.front() == '/') {
    std::string why;
    if (auto made = make_in(near_dir, why); !made.empty()) return made;
    reasons = why + "; ";
  }
  const std::string tmp = "/tmp/multinode-" + std::to_string(::geteuid());
  std::string why;
  if (own_tmp_directory(tmp, why)) {
    if (auto made = make_in(tmp, why); !made.empty()) return made;
  }
  throw std::system_error(std::make_error_code(std::errc::permission_denied),
                          "cannot make the private directory of the workers' mesh: " + reasons + why +
                              " (give --control PATH in a short directory of this user's, or fix " + tmp +
                              ")");
}

}  // namespace

struct MeshBroker::Connection {
  explicit Connection(boost::asio::io_context& io) : socket(io), timer(io) {}
  stream_protocol::socket socket;
  boost::asio::steady_timer timer;  // the join timeout while pending
  unsigned char in[record_size] = {};
  std::size_t have = 0;
  struct Bytes {
    unsigned char data[record_size];
  };
  std::deque<Bytes> out;
  bool writing = false;
  bool open = true;
  NodeId member = 0;  // 0 until its join is accepted
  unsigned slot = 0;
  pid_t pid = 0;  // SO_PEERCRED, for the log
};

MeshBroker::MeshBroker(boost::asio::io_context& io, const std::string& near_dir, Limits limits,
                       NoticeHandler on_notice)
    : io_(io),
      limits_(limits),
      on_notice_(std::move(on_notice)),
      directory_(make_private_directory(near_dir)),
      acceptor_(io),
      accept_retry_(io) {
  const std::string path = directory_ + "/supervisor.sock";
  boost::system::error_code error;
  acceptor_.open(stream_protocol(), error);
  if (!error) acceptor_.bind(stream_protocol::endpoint(path), error);
  if (!error) acceptor_.listen(boost::asio::socket_base::max_listen_connections, error);
  if (error) {
    const std::string message = error.message();
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
    throw std::system_error(
        std::make_error_code(std::errc::io_error),
        "cannot listen on " + path + " for the workers' mesh: " + message +
            " (check the open-files limit, ulimit -n, and the space on that file system)");
  }
  log(LogLevel::debug, "the workers' mesh: ", directory_);
  accept_next();
}

void MeshBroker::stop_accepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  std::list<std::shared_ptr<Connection>> pending;
  pending.swap(pending_);
  for (const auto& connection : pending) close(connection);
}

MeshBroker::~MeshBroker() {
  stop_accepting();
  for (auto& [id, member] : members_) {
    if (const auto connection = member.connection) close(connection);
  }
  std::error_code error;
  std::filesystem::remove_all(directory_, error);
  if (error) {
    log(LogLevel::warning, "cannot remove the workers' mesh directory ", directory_, ": ", error.message(),
        " (remove it by hand)");
  }
}

bool MeshBroker::expect(NodeId worker, unsigned slot) {
  members_[worker] = Member{slot, nullptr, false, false};
  if (master_ != 0) return false;
  master_ = worker;
  return true;
}

void MeshBroker::expect_standby(NodeId worker) {
  members_[worker] = Member{0, nullptr, false, true};
}

MeshBroker::Promotion MeshBroker::promote(NodeId worker, unsigned slot) {
  Promotion promotion;
  const auto it = members_.find(worker);
  if (it == members_.end() || !it->second.standby) return promotion;
  Member& member = it->second;
  member.standby = false;
  member.slot = slot;
  if (master_ == 0) {
    master_ = worker;
    promotion.master = true;
  }
  if (member.connection && member.connection->open) {
    member.connection->slot = slot;
    send(member.connection, static_cast<std::uint16_t>(RecordType::promote), worker, slot,
         promotion.master ? 1 : 0);
    promotion.told = true;
  }
  return promotion;
}

void MeshBroker::worker_exited(NodeId worker, bool hand_over) {
  const auto it = members_.find(worker);
  if (it == members_.end()) return;
  if (const auto connection = it->second.connection) close(connection);
  members_.erase(it);
  const std::string socket = directory_ + "/" + std::to_string(worker) + ".sock";
  if (::unlink(socket.c_str()) != 0 && errno != ENOENT) {
    log(LogLevel::warning, "cannot remove ", socket, ": ", std::strerror(errno));
  }
  if (master_ != worker) return;
  master_ = 0;
  if (!hand_over) return;  // the supervisor is stopping: every member goes too
  // The oldest live member (lowest id) that can hear it; else the next worker started gets the env.
  for (auto& [id, member] : members_) {
    if (member.standby || !member.connection || !member.connection->open) continue;
    master_ = id;
    send(member.connection, static_cast<std::uint16_t>(RecordType::master), id, member.slot, 1);
    log(LogLevel::info, "worker ", id, " (slot ", member.slot, ") holds the master role now (worker ", worker,
        ", which held it, exited)");
    return;
  }
  log(LogLevel::debug, "the master role is free: the next worker started gets MULTINODE_MASTER=1");
}

void MeshBroker::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code error, stream_protocol::socket socket) {
    if (error == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (error) {
      // Out of descriptors, most likely: try again in a moment rather than spin.
      log(LogLevel::warning, "the workers' mesh: accept failed: ", error.message(),
          " (raise the open-files limit, ulimit -n); retrying in 100 ms");
      accept_retry_.expires_after(std::chrono::milliseconds{100});
      accept_retry_.async_wait([this](boost::system::error_code wait_error) {
        if (!wait_error) accept_next();
      });
      return;
    }
    auto connection = std::make_shared<Connection>(io_);
    connection->socket = std::move(socket);
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(connection->socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0)
      connection->pid = credentials.pid;
    if (pending_.size() >= limits_.max_pending) {
      if (refused_pending_++ % 100 == 0) {
        log(LogLevel::warning, "the workers' mesh: closing a connection from pid ", connection->pid, ": ",
            pending_.size(), " connections already wait for their join record (Options::mesh_max_pending; ",
            refused_pending_, " refused so far). Something connects to ", directory_,
            "/supervisor.sock without joining: find it by that pid");
      }
      close(connection);
    } else {
      pending_.push_back(connection);
      connection->timer.expires_after(limits_.join_timeout);
      connection->timer.async_wait([this, connection](boost::system::error_code wait_error) {
        if (wait_error || !connection->open || connection->member != 0) return;
        refuse(connection, "it sent no join record within " + std::to_string(limits_.join_timeout.count()) +
                               " ms (Options::mesh_join_timeout)");
      });
      read_next(connection);
    }
    accept_next();
  });
}

void MeshBroker::read_next(const std::shared_ptr<Connection>& connection) {
  // Never more than one record's bytes at a time: nothing is buffered beyond it.
  connection->socket.async_read_some(
      boost::asio::buffer(connection->in + connection->have, record_size - connection->have),
      [this, connection](boost::system::error_code error, std::size_t size) {
        if (!connection->open) return;
        if (error) {
          if (connection->member == 0) {
            refuse(connection, connection->have == 0 && error == boost::asio::error::eof
                                   ? std::string("it closed before sending a record")
                                   : "it closed or failed before a whole record: " + error.message());
          } else {
            log(LogLevel::debug, "worker ", connection->member,
                " closed its connection to the mesh: ", error.message());
            close(connection);
          }
          return;
        }
        connection->have += size;
        if (connection->have < record_size) return read_next(connection);
        connection->have = 0;
        on_record(connection);
        if (connection->open) read_next(connection);
      });
}

void MeshBroker::on_record(const std::shared_ptr<Connection>& connection) {
  if (connection->member == 0) return on_first(connection);
  const NodeId id = connection->member;
  Record record;
  const std::uint16_t type = static_cast<std::uint16_t>(connection->in[0] | (connection->in[1] << 8));
  const bool decoded = decode_record(connection->in, record_size, record);
  if (decoded && record.type == RecordType::join) {
    // A promoted standby joins on the connection it waited on.
    const auto it = members_.find(id);
    if (it != members_.end() && !it->second.standby && !it->second.joined &&
        it->second.connection == connection && record.peer_id == id && record.peer_slot == it->second.slot) {
      return admit(connection, it->second, id, record.value);
    }
    log(LogLevel::warning, "worker ", id, " sent a join record ",
        it != members_.end() && it->second.standby
            ? "before it was promoted (a standby waits for its promote record)"
            : "it may not send (it joined already, or names another slot)",
        " (", where_documented, "): closing its connection to the supervisor");
    return close(connection);
  }
  if (!decoded || (record.type != RecordType::ready && record.type != RecordType::watchdog)) {
    log(LogLevel::warning, "worker ", id, " sent a ", record_name(type),
        " record after its join, where only ready and watchdog records may come (", where_documented,
        "): closing its connection to the supervisor (its mesh streams stay; it gets no more peers)");
    return close(connection);
  }
  // A promoted standby's records sent before its promote arrived name slot 0.
  const auto member = members_.find(id);
  const bool waited = member != members_.end() && !member->second.joined && record.peer_slot == 0;
  if (record.peer_id != id || (record.peer_slot != connection->slot && !waited)) {
    log(LogLevel::warning, "worker ", id, " (slot ", connection->slot, ") sent a ", record_name(type),
        " record naming worker ", record.peer_id, " of slot ", record.peer_slot,
        ": a worker speaks only for itself. Closing its connection to the supervisor");
    return close(connection);
  }
  NotifyMessage notice;
  notice.ready = record.type == RecordType::ready;
  notice.watchdog = record.type == RecordType::watchdog;
  on_notice_(id, notice);
}

void MeshBroker::on_first(const std::shared_ptr<Connection>& connection) {
  Record record;
  const std::uint16_t type = static_cast<std::uint16_t>(connection->in[0] | (connection->in[1] << 8));
  if (!decode_record(connection->in, record_size, record)) {
    return refuse(connection, "its first record is of an " + record_name(type) + ", not a join");
  }
  if (record.type == RecordType::join) return on_join(connection, record);
  if (record.type == RecordType::standby) return on_standby(connection, record);
  return refuse(connection, "its first record is a " + record_name(type) + " record, not a join");
}

void MeshBroker::on_standby(const std::shared_ptr<Connection>& connection, const Record& record) {
  const NodeId id = record.peer_id;
  const auto it = members_.find(id);
  if (it == members_.end() || !it->second.standby) {
    return refuse(connection,
                  "it says it is standby " + std::to_string(id) +
                      ", which is not a waiting standby of this supervisor (a standby sends its own "
                      "MULTINODE_ID, and only while MULTINODE_STANDBY=1 and not promoted)");
  }
  if (record.peer_slot != 0) {
    return refuse(connection, "its standby record names slot " + std::to_string(record.peer_slot) +
                                  ": a standby has no slot (0) until it is promoted");
  }
  if (it->second.connection) {
    return refuse(connection, "standby " + std::to_string(id) + " is connected already: one connection each");
  }
  take(connection, it->second, id);
  log(LogLevel::debug, "standby ", id, " (pid ", record.value, ") is connected to the mesh's supervisor");
}

void MeshBroker::on_join(const std::shared_ptr<Connection>& connection, const Record& record) {
  const NodeId id = record.peer_id;
  const auto it = members_.find(id);
  if (it == members_.end() || it->second.standby) {
    return refuse(connection, "it joins as worker " + std::to_string(id) +
                                  ", which is not a live worker of this supervisor (a worker joins with its "
                                  "own MULTINODE_ID and MULTINODE_SLOT)");
  }
  Member& member = it->second;
  if (member.slot != record.peer_slot) {
    return refuse(connection, "it joins as worker " + std::to_string(id) + " of slot " +
                                  std::to_string(record.peer_slot) + ", but worker " + std::to_string(id) +
                                  " is in slot " + std::to_string(member.slot));
  }
  if (member.joined || member.connection) {
    return refuse(connection, "worker " + std::to_string(id) +
                                  " has joined already: a worker joins once, on one connection");
  }
  admit(connection, member, id, record.value);
}

void MeshBroker::take(const std::shared_ptr<Connection>& connection, Member& member, NodeId id) {
  std::erase(pending_, connection);
  connection->timer.cancel();
  connection->member = id;
  connection->slot = member.slot;
  member.connection = connection;
}

void MeshBroker::admit(const std::shared_ptr<Connection>& connection, Member& member, NodeId id,
                       std::uint64_t pid) {
  take(connection, member, id);
  member.joined = true;
  log(LogLevel::debug, "worker ", id, " (slot ", member.slot, ", pid ", pid, ") joined the mesh");
  // Every member before it that can still be reached: the newcomer connects to each.
  for (const auto& [other_id, other] : members_) {
    if (other_id == id || !other.joined || !other.connection || !other.connection->open) continue;
    send(connection, static_cast<std::uint16_t>(RecordType::peer), other_id, other.slot, 0);
  }
}

void MeshBroker::send(const std::shared_ptr<Connection>& connection, std::uint16_t type, NodeId id,
                      unsigned slot, std::uint64_t value) {
  if (!connection->open) return;
  Connection::Bytes bytes{};
  encode_record({static_cast<RecordType>(type), id, slot, value}, bytes.data);
  connection->out.push_back(bytes);
  if (!connection->writing) flush(connection);
}

void MeshBroker::flush(const std::shared_ptr<Connection>& connection) {
  if (connection->out.empty() || !connection->open) return;
  connection->writing = true;
  boost::asio::async_write(connection->socket, boost::asio::buffer(connection->out.front().data),
                           [this, connection](boost::system::error_code error, std::size_t) {
                             connection->writing = false;
                             if (!connection->open) return;
                             if (error) {
                               log(LogLevel::debug, "worker ", connection->member,
                                   ": writing to its mesh connection failed: ", error.message());
                               return close(connection);
                             }
                             connection->out.pop_front();
                             flush(connection);
                           });
}

void MeshBroker::refuse(const std::shared_ptr<Connection>& connection, const std::string& why) {
  log(LogLevel::warning, "the workers' mesh: closing a connection to ", directory_,
      "/supervisor.sock from pid ", connection->pid, ": ", why, " (", where_documented, ")");
  close(connection);
}

void MeshBroker::close(const std::shared_ptr<Connection>& connection) {
  if (!connection->open) return;
  const std::shared_ptr<Connection> keep = connection;  // it may be one of the lists' own copies
  keep->open = false;
  boost::system::error_code ignored;
  keep->socket.close(ignored);
  keep->timer.cancel();
  std::erase(pending_, keep);
  if (keep->member != 0) {
    const auto it = members_.find(keep->member);
    if (it != members_.end() && it->second.connection == keep) it->second.connection.reset();
  }
}

}  // namespace multinode::detail

#include "control/channel.hpp"

#include <multinode/error.hpp>

#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace multinode::detail {
namespace {

void put16(unsigned char* p, std::uint16_t v) {
  p[0] = static_cast<unsigned char>(v);
  p[1] = static_cast<unsigned char>(v >> 8);
}
void put32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint16_t get16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t get32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

// Layout: type u16 | reserved u16 (0) | peer_id u32 | peer_slot u32 | reserved u32 (0) | value u64
void encode_record(const Record& record, unsigned char (&out)[record_size]) {
  std::memset(out, 0, record_size);
  put16(out, static_cast<std::uint16_t>(record.type));
  put32(out + 4, record.peer_id);
  put32(out + 8, record.peer_slot);
  put64(out + 16, record.value);
}

bool decode_record(const unsigned char* data, std::size_t size, Record& record) {
  if (size != record_size) return false;
  const std::uint16_t type = get16(data);
  const bool known = type >= 1 && type <= static_cast<std::uint16_t>(RecordType::promote);
  if (!known) return false;
  record.type = static_cast<RecordType>(type);
  record.peer_id = get32(data + 4);
  record.peer_slot = get32(data + 8);
  record.value = get64(data + 16);
  if (record.type == RecordType::bridge_stats) {
    if (record.peer_slot >= bridge_stats_fields) return false;
    if (record.peer_slot == static_cast<std::uint32_t>(BridgeStatsField::state) &&
        record.value > static_cast<std::uint64_t>(BridgeLinkState::up)) {
      return false;
    }
  }
  return true;
}

std::vector<Record> bridge_stats_records(const BridgeCounters& c, std::uint32_t serial) {
  const std::uint64_t values[bridge_stats_fields] = {static_cast<std::uint64_t>(c.state),
                                                     c.published,
                                                     c.received,
                                                     c.dropped,
                                                     c.oversized,
                                                     c.foreign,
                                                     c.malformed,
                                                     c.bad_replies,
                                                     c.reconnects,
                                                     c.queued_bytes};
  std::vector<Record> records;
  records.reserve(bridge_stats_fields);
  for (std::uint32_t field = 0; field < bridge_stats_fields; ++field) {
    records.push_back({RecordType::bridge_stats, serial, field, values[field]});
  }
  return records;
}

void apply_bridge_stats(const Record& record, BridgeCounters& c) {
  switch (static_cast<BridgeStatsField>(record.peer_slot)) {
    case BridgeStatsField::state:
      c.state = record.value <= static_cast<std::uint64_t>(BridgeLinkState::up)
                    ? static_cast<BridgeLinkState>(record.value)
                    : BridgeLinkState::off;
      break;
    case BridgeStatsField::published:
      c.published = record.value;
      break;
    case BridgeStatsField::received:
      c.received = record.value;
      break;
    case BridgeStatsField::dropped:
      c.dropped = record.value;
      break;
    case BridgeStatsField::oversized:
      c.oversized = record.value;
      break;
    case BridgeStatsField::foreign:
      c.foreign = record.value;
      break;
    case BridgeStatsField::malformed:
      c.malformed = record.value;
      break;
    case BridgeStatsField::bad_replies:
      c.bad_replies = record.value;
      break;
    case BridgeStatsField::reconnects:
      c.reconnects = record.value;
      break;
    case BridgeStatsField::queued_bytes:
      c.queued_bytes = record.value;
      break;
  }
  // Wrapping as the counters themselves would: the figures are the worker's, not checked against each other.
  c.rejected = c.oversized + c.foreign + c.malformed + c.bad_replies;
}

ControlChannel::ControlChannel(boost::asio::io_context& io, int fd) : socket_(io, fd) {
  socket_.non_blocking(true);
}

ControlChannel::~ControlChannel() {
  for (const auto& p : pending_) {
    if (p.fd >= 0) ::close(p.fd);
  }
}

void ControlChannel::start(RecordHandler on_record, ClosedHandler on_closed) {
  on_record_ = std::move(on_record);
  on_closed_ = std::move(on_closed);
  wait_readable();
}

void ControlChannel::wait_readable() {
  if (!socket_.is_open()) return;
  socket_.async_wait(boost::asio::posix::descriptor_base::wait_read, [this](boost::system::error_code error) {
    if (error == boost::asio::error::operation_aborted) return;
    if (error) return fail(std::error_code(error.value(), std::system_category()));
    read_records();
  });
}

void ControlChannel::read_records() {
  while (socket_.is_open()) {
    unsigned char data[record_size + 1];
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))];
    iovec vector{data, sizeof data};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket_.native_handle(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait_readable();
    if (n < 0) return fail(std::error_code(errno, std::system_category()));
    if (n == 0) return fail({});  // an empty code: the other side closed

    int fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int passed = -1;
          std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          if (fd < 0)
            fd = passed;
          else
            ::close(passed);  // one fd per record: extra ones are not ours to keep
        }
      }
    }
    Record record;
    if ((message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
        !decode_record(data, static_cast<std::size_t>(n), record)) {
      if (fd >= 0) ::close(fd);
      return fail(make_error_code(errc::control_protocol));
    }
    if (record.type != RecordType::peer && fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    on_record_(record, fd);
  }
}

void ControlChannel::send(const Record& record, int fd_to_pass) {
  if (!socket_.is_open()) {
    if (fd_to_pass >= 0) ::close(fd_to_pass);
    return;
  }
  pending_.push_back({record, fd_to_pass});
  if (!waiting_writable_) flush();
}

void ControlChannel::flush() {
  while (!pending_.empty() && socket_.is_open()) {
    Pending& next = pending_.front();
    unsigned char data[record_size];
    encode_record(next.record, data);
    iovec vector{data, sizeof data};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))] = {};
    if (next.fd >= 0) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&message);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &next.fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(socket_.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      waiting_writable_ = true;
      socket_.async_wait(boost::asio::posix::descriptor_base::wait_write,
                         [this](boost::system::error_code error) {
                           waiting_writable_ = false;
                           if (error == boost::asio::error::operation_aborted) return;
                           if (error) return fail(std::error_code(error.value(), std::system_category()));
                           flush();
                         });
      return;
    }
    if (n < 0) return fail(std::error_code(errno, std::system_category()));
    // The kernel holds its own reference to a passed fd now: ours can go.
    if (next.fd >= 0) ::close(next.fd);
    pending_.pop_front();
  }
}

void ControlChannel::fail(std::error_code error) {
  close();
  if (!closed_reported_ && on_closed_) {
    closed_reported_ = true;
    on_closed_(error);
  }
}

void ControlChannel::close() {
  if (socket_.is_open()) {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  for (const auto& p : pending_) {
    if (p.fd >= 0) ::close(p.fd);
  }
  pending_.clear();
}

}  // namespace multinode::detail

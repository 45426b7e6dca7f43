// The shared load table and the acceptors' view of it (balance.hpp).
#include "net/balance.hpp"

#include "common/log.hpp"

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>
#include <utility>

namespace multinode::detail {

// Another process reads them: only address-free (lock-free) atomics work across processes.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

struct BalanceTable::Header {
  // Entries below this index may be in use: the master raises it before it hands
  // out an entry, so a scan never misses a live one.
  std::atomic<std::uint32_t> used;
};

// A cache line each: every process writes its own at every accept.
struct alignas(64) BalanceTable::Entry {
  std::atomic<std::uint32_t> active;  // 1 while the process accepts
  std::atomic<std::uint32_t> load;    // the connections it holds, as it last said
};

namespace {

constexpr std::size_t entries_offset = 64;
constexpr std::size_t table_bytes = entries_offset + sizeof(std::uint64_t) * 8 * BalanceTable::capacity;

void* map_table(int fd) {
  void* memory = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "balance: mmap");
  return memory;
}

}  // namespace

BalanceTable::BalanceTable(void* memory, int table_fd, int doorbell_fd) noexcept
    : header_(static_cast<Header*>(memory)), table_fd_(table_fd), doorbell_fd_(doorbell_fd) {}

BalanceTable::Entry* BalanceTable::entries() const noexcept {
  return reinterpret_cast<Entry*>(reinterpret_cast<char*>(header_) + entries_offset);
}

BalanceTable BalanceTable::create() {
  static_assert(sizeof(Entry) == 64 && sizeof(Header) <= entries_offset);
  static_assert(table_bytes >= entries_offset + sizeof(Entry) * capacity);
  const int fd = ::memfd_create("multinode-balance", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "balance: memfd_create");
  // Sealed at its size: a worker cannot shrink it under the others' mappings (SIGBUS).
  if (::ftruncate(fd, table_bytes) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "balance: sizing the memfd");
  }
  const int doorbell = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (doorbell < 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "balance: eventfd");
  }
  void* memory = nullptr;
  try {
    memory = map_table(fd);
  } catch (...) {
    ::close(fd);
    ::close(doorbell);
    throw;
  }
  // A fresh memfd reads as zeros: every entry inactive. Constructed in place for the types' sake.
  new (memory) Header{};
  for (unsigned i = 0; i < capacity; ++i)
    new (static_cast<char*>(memory) + entries_offset + i * sizeof(Entry)) Entry{};
  BalanceTable table(memory, fd, doorbell);
  table.master_ = true;
  table.wake_fds_.assign(capacity, -1);
  return table;
}

BalanceTable BalanceTable::adopt(int table_fd, int doorbell_fd, int wake_fd, unsigned entry) {
  void* memory = nullptr;
  try {
    if (entry >= capacity)
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "balance: entry out of range");
    memory = map_table(table_fd);
  } catch (...) {
    ::close(table_fd);
    ::close(doorbell_fd);
    ::close(wake_fd);
    throw;
  }
  ::close(table_fd);  // the mapping keeps the memory
  ::fcntl(doorbell_fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(wake_fd, F_SETFD, FD_CLOEXEC);
  BalanceTable table(memory, -1, doorbell_fd);
  table.entry_ = entry;
  table.wake_fds_.assign(entry + 1, -1);
  table.wake_fds_[entry] = wake_fd;
  return table;
}

BalanceTable::BalanceTable(BalanceTable&& other) noexcept
    : header_(std::exchange(other.header_, nullptr)),
      table_fd_(std::exchange(other.table_fd_, -1)),
      doorbell_fd_(std::exchange(other.doorbell_fd_, -1)),
      master_(other.master_),
      entry_(std::exchange(other.entry_, std::nullopt)),
      wake_fds_(std::move(other.wake_fds_)) {
  other.wake_fds_.clear();
}

BalanceTable& BalanceTable::operator=(BalanceTable&& other) noexcept {
  if (this != &other) {
    release_memory();
    header_ = std::exchange(other.header_, nullptr);
    table_fd_ = std::exchange(other.table_fd_, -1);
    doorbell_fd_ = std::exchange(other.doorbell_fd_, -1);
    master_ = other.master_;
    entry_ = std::exchange(other.entry_, std::nullopt);
    wake_fds_ = std::move(other.wake_fds_);
    other.wake_fds_.clear();
  }
  return *this;
}

BalanceTable::~BalanceTable() {
  release_memory();
}

void BalanceTable::release_memory() noexcept {
  if (header_ != nullptr) ::munmap(header_, table_bytes);
  header_ = nullptr;
  if (table_fd_ >= 0) ::close(table_fd_);
  if (doorbell_fd_ >= 0) ::close(doorbell_fd_);
  table_fd_ = doorbell_fd_ = -1;
  for (int& fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

int BalanceTable::wake_fd(unsigned entry) const noexcept {
  return entry < wake_fds_.size() ? wake_fds_[entry] : -1;
}

std::optional<unsigned> BalanceTable::allocate() {
  if (header_ == nullptr || !master_) return std::nullopt;
  const auto free = std::find(wake_fds_.begin(), wake_fds_.end(), -1);
  if (free == wake_fds_.end()) return std::nullopt;
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    log(LogLevel::warning, "balance: eventfd: ", std::strerror(errno),
        "; a process starts without even balancing (raise ulimit -n)");
    return std::nullopt;
  }
  *free = wake;
  const auto index = static_cast<unsigned>(free - wake_fds_.begin());
  Entry& entry = entries()[index];
  entry.active.store(0, std::memory_order_relaxed);
  entry.load.store(0, std::memory_order_relaxed);
  if (header_->used.load(std::memory_order_relaxed) <= index)
    header_->used.store(index + 1, std::memory_order_release);
  return index;
}

void BalanceTable::release(unsigned index) noexcept {
  if (header_ == nullptr || !master_ || index >= capacity || wake_fds_[index] < 0) return;
  ::close(wake_fds_[index]);
  wake_fds_[index] = -1;
  // A process killed while it held the fewest kept the others from accepting.
  entries()[index].active.store(0, std::memory_order_release);
  ring();
}

void BalanceTable::activate(std::uint32_t load) noexcept {
  if (header_ == nullptr || !entry_) return;
  Entry& entry = entries()[*entry_];
  entry.load.store(load, std::memory_order_relaxed);
  entry.active.store(1, std::memory_order_release);
}

void BalanceTable::deactivate() noexcept {
  if (header_ == nullptr || !entry_) return;
  entries()[*entry_].active.store(0, std::memory_order_release);
  ring();
}

void BalanceTable::publish(std::uint32_t load) noexcept {
  if (header_ == nullptr || !entry_) return;
  std::atomic<std::uint32_t>& mine = entries()[*entry_].load;
  if (mine.load(std::memory_order_relaxed) != load) mine.store(load, std::memory_order_release);
}

bool BalanceTable::may_accept(std::uint32_t load) const noexcept {
  if (header_ == nullptr || !entry_) return true;
  const unsigned used = std::min(header_->used.load(std::memory_order_acquire), capacity);
  std::uint32_t fewest = std::numeric_limits<std::uint32_t>::max();
  const Entry* all = entries();
  for (unsigned i = 0; i < used; ++i) {
    if (i == *entry_ || all[i].active.load(std::memory_order_acquire) == 0) continue;
    fewest = std::min(fewest, all[i].load.load(std::memory_order_acquire));
  }
  // Alone, or the others hold this many already: room for one more here.
  return fewest == std::numeric_limits<std::uint32_t>::max() || load < fewest + slack;
}

namespace {
void signal_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd, &one, sizeof one);
}
}  // namespace

void BalanceTable::ring() noexcept {
  if (doorbell_fd_ >= 0) signal_eventfd(doorbell_fd_);
}

void BalanceTable::wake_all() noexcept {
  if (!master_ || header_ == nullptr) return;
  const unsigned used = std::min(header_->used.load(std::memory_order_relaxed), capacity);
  for (unsigned i = 0; i < used; ++i) {
    if (wake_fds_[i] >= 0 && (!entry_ || i != *entry_)) signal_eventfd(wake_fds_[i]);
  }
}

namespace {
AcceptBalance* current_balance = nullptr;
}  // namespace

AcceptBalance::AcceptBalance(boost::asio::io_context& io, BalanceTable& table,
                             std::function<std::uint64_t()> load)
    : io_(io), table_(table), load_(std::move(load)) {
  // The master listens to its doorbell, a worker to its own wake-up.
  const int watched = table_.is_master() ? table_.doorbell_fd() : table_.own_wake_fd();
  if (watched >= 0) {
    const int own = ::fcntl(watched, F_DUPFD_CLOEXEC, 3);
    if (own >= 0) wake_.emplace(io, own);
  }
  current_balance = this;
}

AcceptBalance::~AcceptBalance() {
  *alive_ = false;
  if (current_balance == this) current_balance = nullptr;
}

AcceptBalance* AcceptBalance::current() noexcept {
  return current_balance;
}

std::uint32_t AcceptBalance::load() const noexcept {
  const std::uint64_t open = load_ ? load_() : 0;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(open, std::numeric_limits<std::uint32_t>::max()));
}

void AcceptBalance::start() {
  if (started_) return;
  started_ = true;
  table_.activate(load());
  watch();
}

void AcceptBalance::stop() noexcept {
  if (!started_) return;
  started_ = false;
  table_.deactivate();
  boost::system::error_code ignored;
  if (wake_) wake_->cancel(ignored);
}

void AcceptBalance::destroy_io_objects() noexcept {
  stop();
  wake_.reset();
  acceptors_.clear();
}

void AcceptBalance::watch() {
  if (!wake_ || !started_) return;
  wake_->async_wait(boost::asio::posix::descriptor_base::wait_read,
                    [this, alive = alive_](const boost::system::error_code& error) {
                      if (!*alive || error || !started_) return;
                      // Emptied before it is watched again (Asio's wait reports a readable
                      // fd at once); a ring from now on makes it readable again.
                      std::uint64_t count = 0;
                      [[maybe_unused]] const auto got = ::read(wake_->native_handle(), &count, sizeof count);
                      if (table_.is_master()) table_.wake_all();
                      watch();
                      retry_all();
                    });
}

void AcceptBalance::retry_all() {
  // A copy: a burst's handler may close an acceptor.
  const auto acceptors = acceptors_;
  for (const auto& entry : acceptors) entry.second();
}

void AcceptBalance::closed() noexcept {
  if (!started_) return;
  table_.publish(load());
  if (retry_posted_) return;
  retry_posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    retry_posted_ = false;
    if (started_) retry_all();
  });
}

bool AcceptBalance::may_accept() noexcept {
  if (!started_) return true;
  const std::uint32_t now = load();
  table_.publish(now);  // connections closed since are counted out here
  return table_.may_accept(now);
}

void AcceptBalance::accepted() noexcept {
  if (!started_) return;
  table_.publish(load());
  accepted_since_ring_ = true;
}

void AcceptBalance::declined() noexcept {
  if (!accepted_since_ring_) return;
  // Taking connections made this process less of a reason for the others to hold back.
  accepted_since_ring_ = false;
  table_.ring();
}

std::uint64_t AcceptBalance::add_acceptor(Retry retry) {
  const std::uint64_t key = next_key_++;
  acceptors_.emplace_back(key, std::move(retry));
  return key;
}

void AcceptBalance::remove_acceptor(std::uint64_t key) noexcept {
  std::erase_if(acceptors_, [key](const auto& entry) { return entry.first == key; });
}

}  // namespace multinode::detail

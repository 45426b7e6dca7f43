// Even balancing over a shared listening socket (docs/architecture.md, "Even
// balancing"). Every serving process publishes how many connections it holds in a
// table of shared memory; a process holding `slack` more than the least-loaded
// other one stops accepting and leaves the connection in the kernel's queue of the
// shared socket, where another process takes it. Nothing leaves that queue before
// a process takes it, so a kill -9 still loses no waiting connection. With
// Balancing::reuseport every process holds every slot's socket and applies the same
// rule to each: the kernel's hash picks the queue, the table who serves it.
//
// The listening socket wakes every waiting process for each new connection, but
// not again for the ones left behind: a process that stops accepting after it
// took some rings the master's doorbell (an eventfd only the master reads), and
// the master wakes every serving process through an eventfd of its own, so that
// they look again. (One eventfd read by all would not do: the first to read it
// empties it for the others, and one never read stays readable, which Asio's
// wait, re-armed with EPOLL_CTL_MOD, reports at once, again and again.) A process that is hung while it holds
// the fewest would keep the others from accepting: a connection left in the queue longer than fallback_wait
// is accepted by whichever process sees it, balanced or not.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace multinode::detail {

class BalanceTable {
 public:
  // Entries the table holds: processes serving at the same time (a rolling restart
  // has two per slot for a moment). Processes past it accept unbalanced.
  static constexpr unsigned capacity = 1024;
  // A process accepts while it holds fewer than the least-loaded other one + slack.
  static constexpr std::uint32_t slack = 2;
  // See above: the most a connection waits in the queue because of balancing.
  // Long enough for a busy machine to schedule the process that should take it.
  static constexpr std::chrono::milliseconds fallback_wait{500};

  // The master's: a new table (a sealed memfd) and its doorbell (an eventfd).
  static BalanceTable create();
  // A worker's: the table, the master's doorbell and this process's wake-up
  // eventfd the master passed, and the entry it gave this process. Takes the fds
  // (closes them on failure).
  static BalanceTable adopt(int table_fd, int doorbell_fd, int wake_fd, unsigned entry);
  BalanceTable() = default;
  BalanceTable(BalanceTable&& other) noexcept;
  BalanceTable& operator=(BalanceTable&& other) noexcept;
  ~BalanceTable();

  explicit operator bool() const noexcept { return header_ != nullptr; }
  bool is_master() const noexcept { return master_; }
  int table_fd() const noexcept { return table_fd_; }
  int doorbell_fd() const noexcept { return doorbell_fd_; }
  // The eventfd that wakes the process of entry (the master's, for a worker it
  // starts); a worker's own. -1 for none.
  int wake_fd(unsigned entry) const noexcept;
  int own_wake_fd() const noexcept { return entry_ ? wake_fd(*entry_) : -1; }

  // The master's bookkeeping (in its own memory): an entry for a process about to
  // start, nullopt when all are taken; release() once it has ended (its load no
  // longer counts, and the others are told to look again).
  std::optional<unsigned> allocate();
  void release(unsigned entry) noexcept;

  // The serving process's: this entry's load counts from activate() until
  // deactivate(); publish() stores it.
  void set_entry(unsigned entry) noexcept { entry_ = entry; }
  std::optional<unsigned> entry() const noexcept { return entry_; }
  void activate(std::uint32_t load) noexcept;
  void deactivate() noexcept;
  void publish(std::uint32_t load) noexcept;
  // Whether this process, holding `load`, may accept one more connection.
  bool may_accept(std::uint32_t load) const noexcept;
  // Asks the master to wake every serving process.
  void ring() noexcept;
  // The master's, once its doorbell rang: wakes each serving worker.
  void wake_all() noexcept;

 private:
  struct Header;
  struct Entry;
  BalanceTable(void* memory, int table_fd, int doorbell_fd) noexcept;
  Entry* entries() const noexcept;
  void release_memory() noexcept;

  Header* header_ = nullptr;
  int table_fd_ = -1;
  int doorbell_fd_ = -1;
  bool master_ = false;
  std::optional<unsigned> entry_;
  // The master's: the wake-up eventfd of each entry in use (-1: free). A worker's:
  // its own at its entry only.
  std::vector<int> wake_fds_;
};

// What the acceptors of this process consult: the table, the process's load (open
// connections of its server) and the doorbell's watch. Set up by the runtime before
// the server starts; without one (reuseport, systemd sockets, a single process)
// acceptors accept everything.
class AcceptBalance {
 public:
  // table: this process's (with its entry), outliving this object.
  AcceptBalance(boost::asio::io_context& io, BalanceTable& table, std::function<std::uint64_t()> load);
  ~AcceptBalance();
  AcceptBalance(const AcceptBalance&) = delete;
  AcceptBalance& operator=(const AcceptBalance&) = delete;

  // The process's one instance, or nullptr.
  static AcceptBalance* current() noexcept;

  // Starts counting this process (when it has an entry) and watching for wake-ups
  // (the master: its doorbell, which it passes on).
  void start();
  // Stops (the process stops accepting): its load no longer counts; the others look again.
  void stop() noexcept;
  // The io_context is going away.
  void destroy_io_objects() noexcept;

  bool may_accept() noexcept;
  // After each accepted connection (published at once: a load the others see is
  // never below the true one).
  void accepted() noexcept;
  // An acceptor stopped with connections left for the others after it took some.
  void declined() noexcept;
  // The server closed a connection: published at once (else the others would take
  // this process for busier than it is), and a look at the queue, where connections
  // may wait that this process is now the one to take.
  void closed() noexcept;

  // Acceptors register a callback to run a burst when the doorbell rings.
  using Retry = std::function<void()>;
  std::uint64_t add_acceptor(Retry retry);
  void remove_acceptor(std::uint64_t key) noexcept;

 private:
  void watch();
  void retry_all();
  std::uint32_t load() const noexcept;

  boost::asio::io_context& io_;
  bool retry_posted_ = false;
  BalanceTable& table_;
  std::function<std::uint64_t()> load_;
  std::optional<boost::asio::posix::stream_descriptor> wake_;
  std::vector<std::pair<std::uint64_t, Retry>> acceptors_;
  std::uint64_t next_key_ = 1;
  bool started_ = false;
  bool accepted_since_ring_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace multinode::detail

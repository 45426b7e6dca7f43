// The load table of even balancing (net/balance.hpp): the rule, entries given out
// and taken back, a worker's view of the master's table, and the doorbell relay.
#include "net/balance.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdint>
#include <optional>
#include <system_error>
#include <vector>

namespace multinode::detail {
namespace {

// Whether fd has something to read now.
bool readable(int fd) {
  pollfd entry{fd, POLLIN, 0};
  return ::poll(&entry, 1, 0) == 1 && (entry.revents & POLLIN) != 0;
}

void drain(int fd) {
  std::uint64_t count = 0;
  while (::read(fd, &count, sizeof count) == sizeof count) {
  }
}

// A second handle on the master's table, as a worker has it (fds duplicated: adopt takes them).
BalanceTable worker_view(const BalanceTable& master, unsigned entry) {
  return BalanceTable::adopt(::fcntl(master.table_fd(), F_DUPFD_CLOEXEC, 3),
                             ::fcntl(master.doorbell_fd(), F_DUPFD_CLOEXEC, 3),
                             ::fcntl(master.wake_fd(entry), F_DUPFD_CLOEXEC, 3), entry);
}

TEST(BalanceTable, AProcessAloneAcceptsWhateverItHolds) {
  BalanceTable table = BalanceTable::create();
  table.set_entry(*table.allocate());
  table.activate(0);
  EXPECT_TRUE(table.may_accept(0));
  EXPECT_TRUE(table.may_accept(1000000));
}

TEST(BalanceTable, AcceptsWhileBelowTheLeastLoadedOtherPlusTheSlack) {
  BalanceTable master = BalanceTable::create();
  const unsigned mine = *master.allocate();
  const unsigned other = *master.allocate();
  const unsigned third = *master.allocate();
  master.set_entry(mine);
  master.activate(0);
  BalanceTable b = worker_view(master, other);
  BalanceTable c = worker_view(master, third);
  b.activate(10);
  c.activate(12);
  EXPECT_TRUE(master.may_accept(10 + BalanceTable::slack - 1));
  EXPECT_FALSE(master.may_accept(10 + BalanceTable::slack));
  // The least-loaded other one counts: when it takes more, so may this one.
  b.publish(20);
  EXPECT_TRUE(master.may_accept(12 + BalanceTable::slack - 1));
  EXPECT_FALSE(master.may_accept(12 + BalanceTable::slack));
  // And the others see this one's load as published.
  master.publish(30);
  EXPECT_FALSE(c.may_accept(30 + BalanceTable::slack));
  EXPECT_TRUE(c.may_accept(20 + BalanceTable::slack - 1));
}

TEST(BalanceTable, InactiveAndReleasedEntriesDoNotCount) {
  BalanceTable master = BalanceTable::create();
  const unsigned mine = *master.allocate();
  const unsigned idle = *master.allocate();
  master.set_entry(mine);
  master.activate(50);
  BalanceTable worker = worker_view(master, idle);
  // Given out but not yet accepting (a worker before run()): it holds nobody back.
  EXPECT_TRUE(master.may_accept(50));
  worker.activate(0);
  EXPECT_FALSE(master.may_accept(50));
  worker.deactivate();  // stopping
  EXPECT_TRUE(master.may_accept(50));
  worker.activate(0);
  master.release(idle);  // it died without deactivating (kill -9)
  EXPECT_TRUE(master.may_accept(50));
}

TEST(BalanceTable, EntriesAreReusedAndRunOutAtCapacity) {
  BalanceTable master = BalanceTable::create();
  std::vector<unsigned> taken;
  for (unsigned i = 0; i < BalanceTable::capacity; ++i) {
    const auto entry = master.allocate();
    ASSERT_TRUE(entry.has_value()) << i;
    taken.push_back(*entry);
  }
  EXPECT_FALSE(master.allocate().has_value());
  master.release(taken[7]);
  EXPECT_EQ(master.allocate(), std::optional<unsigned>(taken[7]));
}

TEST(BalanceTable, ARingReachesTheMasterWhichWakesEveryWorkerButTheRinger) {
  BalanceTable master = BalanceTable::create();
  const unsigned a = *master.allocate();
  const unsigned b = *master.allocate();
  BalanceTable worker_a = worker_view(master, a);
  EXPECT_FALSE(readable(master.doorbell_fd()));
  worker_a.ring();
  EXPECT_TRUE(readable(master.doorbell_fd()));
  drain(master.doorbell_fd());
  master.wake_all();
  EXPECT_TRUE(readable(master.wake_fd(a)));
  EXPECT_TRUE(readable(master.wake_fd(b)));
  // A release rings the master's own doorbell: the others look at the queue again.
  master.release(b);
  EXPECT_TRUE(readable(master.doorbell_fd()));
  EXPECT_EQ(master.wake_fd(b), -1);
}

TEST(BalanceTable, AWorkerSeesTheTableAcrossFork) {
  BalanceTable master = BalanceTable::create();
  const unsigned mine = *master.allocate();
  const unsigned child_entry = *master.allocate();
  master.set_entry(mine);
  master.activate(5);
  const pid_t child = ::fork();
  if (child == 0) {
    BalanceTable worker = worker_view(master, child_entry);
    worker.activate(1);
    ::_exit(worker.may_accept(5 + BalanceTable::slack) ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The child's entry, written through its own mapping, holds this process back.
  EXPECT_FALSE(master.may_accept(1 + BalanceTable::slack));
  EXPECT_TRUE(master.may_accept(1 + BalanceTable::slack - 1));
}

TEST(BalanceTable, AdoptRefusesAnEntryOutOfRangeAndClosesTheFds) {
  BalanceTable master = BalanceTable::create();
  const int table = ::fcntl(master.table_fd(), F_DUPFD_CLOEXEC, 3);
  const int doorbell = ::fcntl(master.doorbell_fd(), F_DUPFD_CLOEXEC, 3);
  const int wake = ::fcntl(master.doorbell_fd(), F_DUPFD_CLOEXEC, 3);
  EXPECT_THROW(BalanceTable::adopt(table, doorbell, wake, BalanceTable::capacity), std::system_error);
  for (const int fd : {table, doorbell, wake}) EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << fd;
}

}  // namespace
}  // namespace multinode::detail

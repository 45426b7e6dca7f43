// The heartbeat cell shared by the master and a worker: a beat through one mapping
// is seen through the other, the size cannot change, "stopping" is not an age,
// and the worker environment names the cell's fd only when heartbeats are on.
#include "common/environment.hpp"
#include "common/heartbeat.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace multinode::detail {
namespace {

using namespace std::chrono_literals;

TEST(HeartbeatCell, ABeatInOneMappingIsSeenInTheOther) {
  HeartbeatCell master = HeartbeatCell::create();
  ASSERT_TRUE(master);
  ASSERT_GE(master.fd(), 0);
  EXPECT_LT(master.age(), 100ms);  // stamped when created
  EXPECT_TRUE(::fcntl(master.fd(), F_GETFD) & FD_CLOEXEC);

  // The worker's side, as after exec: its own mapping of the fd it was given.
  HeartbeatCell worker = HeartbeatCell::adopt(::fcntl(master.fd(), F_DUPFD_CLOEXEC, 3));
  ASSERT_TRUE(worker);
  EXPECT_EQ(worker.fd(), -1);  // adopt() closes the fd: the mapping is enough
  master.close_fd();
  EXPECT_EQ(master.fd(), -1);

  std::this_thread::sleep_for(60ms);
  EXPECT_GE(master.age(), 50ms);
  worker.beat();
  EXPECT_LT(master.age(), 50ms);

  worker.mark_stopping();
  EXPECT_TRUE(master.stopping());
  EXPECT_EQ(master.age(), 0ms);
  worker.beat();
  EXPECT_FALSE(master.stopping());
}

TEST(HeartbeatCell, TheCellCannotBeResized) {
  HeartbeatCell cell = HeartbeatCell::create();
  // A worker shrinking it would make the master's reads fault (SIGBUS).
  EXPECT_NE(::ftruncate(cell.fd(), 0), 0);
  EXPECT_NE(::ftruncate(cell.fd(), 1 << 20), 0);
  EXPECT_LT(cell.age(), 100ms);
}

TEST(HeartbeatCell, AMovedCellKeepsItsMapping) {
  HeartbeatCell cell = HeartbeatCell::create();
  HeartbeatCell moved = std::move(cell);
  EXPECT_FALSE(cell);  // NOLINT(bugprone-use-after-move): a moved-from cell is empty
  ASSERT_TRUE(moved);
  moved.beat();
  EXPECT_LT(moved.age(), 50ms);
  HeartbeatCell empty;
  EXPECT_FALSE(empty);
}

TEST(HeartbeatCell, IntervalsFollowTheTimeout) {
  EXPECT_EQ(heartbeat_beat_interval(1000ms), 250ms);
  EXPECT_EQ(heartbeat_beat_interval(30000ms), 1000ms);
  EXPECT_EQ(heartbeat_beat_interval(1ms), 10ms);
  EXPECT_EQ(heartbeat_check_interval(1000ms), 250ms);
  EXPECT_EQ(heartbeat_check_interval(30000ms), 250ms);
  EXPECT_EQ(heartbeat_check_interval(200ms), 50ms);
  EXPECT_EQ(heartbeat_kill_grace(1000ms), 250ms);
  EXPECT_EQ(heartbeat_kill_grace(30000ms), 1000ms);
}

TEST(HeartbeatCell, TheEnvironmentNamesTheCellAfterTheControlChannel) {
  environment::WorkerStart start{4, 2, 77, {"a", "b"}};
  start.heartbeat = true;
  auto encoded = environment::encode_worker(start);
  encoded.entries.back() = "LISTEN_PID=1";
  std::vector<const char*> envp;
  for (const auto& e : encoded.entries) envp.push_back(e.c_str());
  envp.push_back(nullptr);
  EXPECT_STREQ(environment::find(envp.data(), "MULTINODE_HEARTBEAT_FD"), "6");  // 3, 4 listen; 5 control
  const auto identity = environment::decode_worker(envp.data());
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->control_fd, 5);
  EXPECT_EQ(identity->heartbeat_fd, 6);
  EXPECT_TRUE(environment::is_own_entry("MULTINODE_HEARTBEAT_FD=6"));  // never inherited as it is

  start.heartbeat = false;
  for (const auto& e : environment::encode_worker(start).entries)
    EXPECT_EQ(e.find("HEARTBEAT"), std::string::npos);
  const char* without[] = {"MULTINODE_WORKER_ID=1", "MULTINODE_SLOT=1", "MULTINODE_CONTROL_FD=4", nullptr};
  const auto off = environment::decode_worker(without);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->heartbeat_fd, -1);
}

}  // namespace
}  // namespace multinode::detail

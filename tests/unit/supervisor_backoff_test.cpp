// The supervisor's restart backoff: how long a slot waits before its next restart.
#include "supervisor/backoff.hpp"

#include <gtest/gtest.h>

namespace multinode::detail {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, ImmediateAfterAWorkerThatLivedLongEnough) {
  EXPECT_EQ(restart_delay_after(Options{}, 0), milliseconds{0});
}

TEST(Backoff, DoublesForEachYoungDeathInARowUpToTheCap) {
  Options options;
  options.restart_delay = milliseconds{100};
  options.restart_delay_max = milliseconds{1000};
  EXPECT_EQ(restart_delay_after(options, 1), milliseconds{100});
  EXPECT_EQ(restart_delay_after(options, 2), milliseconds{200});
  EXPECT_EQ(restart_delay_after(options, 3), milliseconds{400});
  EXPECT_EQ(restart_delay_after(options, 4), milliseconds{800});
  EXPECT_EQ(restart_delay_after(options, 5), milliseconds{1000});
  EXPECT_EQ(restart_delay_after(options, 4000000000u), milliseconds{1000}) << "no overflow on a long streak";
}

}  // namespace
}  // namespace multinode::detail

// A worker's request limit (max_requests + jitter) and the pace at which it reads
// its request count (worker/recycle.hpp).
#include "worker/recycle.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <set>

namespace multinode::detail {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t largest = std::numeric_limits<std::uint64_t>::max();

TEST(RecycleLimit, WithoutJitterItIsMaxRequests) {
  EXPECT_EQ(request_limit(5000, 0, 0), 5000u);
  EXPECT_EQ(request_limit(5000, 0, 123456789), 5000u);
}

TEST(RecycleLimit, JitterAddsZeroToJitterInclusive) {
  std::set<std::uint64_t> seen;
  for (std::uint64_t random = 0; random < 1000; ++random) {
    const auto limit = request_limit(100, 9, random);
    EXPECT_GE(limit, 100u);
    EXPECT_LE(limit, 109u);
    seen.insert(limit);
  }
  EXPECT_EQ(seen.size(), 10u);  // every value of the range is drawn
  EXPECT_EQ(request_limit(100, 9, 9), 109u);
  EXPECT_EQ(request_limit(100, 9, 10), 100u);
}

TEST(RecycleLimit, SaturatesInsteadOfWrapping) {
  EXPECT_EQ(request_limit(largest - 5, 100, 50), largest);
  EXPECT_EQ(request_limit(largest, largest, largest), largest);
  EXPECT_EQ(request_limit(1, largest, 41), 42u);
}

TEST(RecycleCheck, WithoutRequestsTheWaitDoublesUpToTheLongest) {
  EXPECT_EQ(next_request_check(1000, 0, 0ms), request_check_min);
  EXPECT_EQ(next_request_check(1000, 0, request_check_min), 2 * request_check_min);
  EXPECT_EQ(next_request_check(1000, 0, 40ms), 80ms);
  EXPECT_EQ(next_request_check(1000, 0, 80ms), request_check_max);
  EXPECT_EQ(next_request_check(1000, 0, request_check_max), request_check_max);
  EXPECT_EQ(next_request_check(0, 0, 1h), request_check_max);
  EXPECT_EQ(next_request_check(1000, -1, 20ms), 40ms);
}

TEST(RecycleCheck, HalfTheTimeToTheLimitWithinTheBounds) {
  // 1000 requests at 1000/s: the limit in 1 s, the next read in 500 ms, capped at 100.
  EXPECT_EQ(next_request_check(1000, 1000, 10ms), request_check_max);
  EXPECT_EQ(request_check_max, 100ms);
  // 100 at 1000/s: 100 ms away, read in 50 ms.
  EXPECT_EQ(next_request_check(100, 1000, 10ms), 50ms);
  // 10 at 1000/s: 10 ms away, read after the shortest wait.
  EXPECT_EQ(next_request_check(10, 1000, 10ms), request_check_min);
  EXPECT_EQ(next_request_check(0, 1000, 10ms), request_check_min);
  EXPECT_EQ(next_request_check(largest, 1e-300, 10ms), request_check_max);
}

TEST(RecycleCheck, ReadsComeCloserAsTheLimitNears) {
  // A steady 20000 requests/s towards a limit 5000 away: simulated reads.
  std::uint64_t served = 0;
  const std::uint64_t limit = 5000;
  double rate = 0;
  std::chrono::milliseconds waited{0};
  std::chrono::milliseconds wait = request_check_min;  // the first read, at the worker's start
  int reads = 0;
  while (served < limit && reads < 100) {
    waited += wait;
    served = static_cast<std::uint64_t>(waited.count()) * 20;
    rate = 20000;
    ++reads;
    wait = next_request_check(limit - std::min(served, limit), rate, wait);
  }
  EXPECT_LT(reads, 100);
  // The limit was passed by at most the shortest wait's worth of requests.
  EXPECT_LE(served - limit, static_cast<std::uint64_t>(request_check_min.count()) * 20);
}

TEST(RecycleCheck, ANewWorkerWhoseLoadStartsLateIsNotOverrunByTheLongestWait) {
  // No request in the first 30 ms, then 20000/s: reads at 10, 30 (20 later), then
  // the rate is known; at most a 40 ms wait of load passes unread.
  std::chrono::milliseconds now{0};
  std::chrono::milliseconds wait = request_check_min;
  std::uint64_t served = 0;
  std::uint64_t last = 0;
  std::chrono::milliseconds last_at{0};
  const std::uint64_t limit = 2000;
  int reads = 0;
  while (served < limit && reads < 100) {
    now += wait;
    served = now > 30ms ? static_cast<std::uint64_t>((now - 30ms).count()) * 20 : 0;
    const double rate =
        static_cast<double>(served - last) / (static_cast<double>((now - last_at).count()) / 1000);
    last = served;
    last_at = now;
    ++reads;
    if (served >= limit) break;
    wait = next_request_check(limit - served, rate, wait);
  }
  EXPECT_LE(served - limit, 40u * 20) << reads << " reads";
}

}  // namespace
}  // namespace multinode::detail

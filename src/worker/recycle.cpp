// A worker's request limit and the pace of its checks (recycle.hpp).
#include "worker/recycle.hpp"

#include <algorithm>
#include <limits>

namespace multinode::detail {

std::uint64_t request_limit(std::uint64_t max_requests, std::uint64_t jitter, std::uint64_t random) noexcept {
  constexpr std::uint64_t largest = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t extra = jitter == largest ? random : random % (jitter + 1);
  return extra > largest - max_requests ? largest : max_requests + extra;
}

std::chrono::milliseconds next_request_check(std::uint64_t remaining, double requests_per_second,
                                             std::chrono::milliseconds last_wait) noexcept {
  if (!(requests_per_second > 0)) return std::clamp(last_wait * 2, request_check_min, request_check_max);
  const double half_way_ms = static_cast<double>(remaining) / requests_per_second * 1000 / 2;
  if (half_way_ms >= static_cast<double>(request_check_max.count())) return request_check_max;
  const auto wait = std::chrono::milliseconds{static_cast<std::int64_t>(half_way_ms)};
  return std::max(wait, request_check_min);
}

}  // namespace multinode::detail

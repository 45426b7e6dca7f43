// When a worker asks its master to be recycled (Options::max_requests): its own
// limit, drawn once at its start, and how often it reads its server's request
// count. A timer reads the count, so serving a request costs nothing more.
#pragma once

#include <chrono>
#include <cstdint>

namespace multinode::detail {

// The longest and shortest wait between two reads of the request count: an idle
// worker wakes 10 times a second; one about to reach its limit every 10 ms.
inline constexpr std::chrono::milliseconds request_check_max{100};
inline constexpr std::chrono::milliseconds request_check_min{10};

// max_requests plus `random` folded into 0 .. jitter (saturating, never past the
// largest count): each worker's own limit, so that workers started together do not
// recycle together.
std::uint64_t request_limit(std::uint64_t max_requests, std::uint64_t jitter, std::uint64_t random) noexcept;

// The wait before the next read of the count, `remaining` requests before the
// limit at the rate seen since the last read (`last_wait` ago): half the time the
// limit is expected in, within request_check_min .. request_check_max. Reads come
// closer as the limit nears, so a steady load passes it by at most about
// request_check_min of requests. With no request since the last read the wait
// doubles up to request_check_max: a worker that has just started, or been idle
// briefly, is read again soon when its load begins.
std::chrono::milliseconds next_request_check(std::uint64_t remaining, double requests_per_second,
                                             std::chrono::milliseconds last_wait) noexcept;

}  // namespace multinode::detail

// How long a slot waits before its next restart.
#pragma once

#include <multinode/options.hpp>

#include <algorithm>
#include <chrono>

namespace multinode::detail {

// 0 after a worker that lived past min_uptime (young_deaths == 0); otherwise
// restart_delay doubled for each young death in a row after the first, capped at
// restart_delay_max.
inline std::chrono::milliseconds restart_delay_after(const Options& options, unsigned young_deaths) {
  if (young_deaths == 0) return std::chrono::milliseconds{0};
  std::chrono::milliseconds delay = options.restart_delay;
  for (unsigned i = 1; i < young_deaths && delay < options.restart_delay_max; ++i) delay *= 2;
  return std::min(delay, options.restart_delay_max);
}

}  // namespace multinode::detail

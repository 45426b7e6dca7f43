// What a process holds in memory, read from /proc by the master (max_rss, status).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace multinode::detail {

// Resident set size of process `pid` in bytes (/proc/PID/statm: resident pages
// times the page size); nullopt once the process is gone or /proc cannot be read.
std::optional<std::uint64_t> resident_bytes(pid_t pid);

}  // namespace multinode::detail

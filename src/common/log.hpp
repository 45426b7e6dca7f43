// Log lines on stderr that say which process wrote them:
//   multinode[master pid 4242] worker 3 (slot 1, pid 4250) exited with status 1
//   multinode[worker 3 slot 1 pid 4250] stopping: the master went away
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace multinode::detail {

enum class LogLevel { debug = 0, info = 1, warning = 2, error = 3 };

// Set by listen() in each process: role and identity for the line prefix.
void set_log_identity(bool is_master, std::uint32_t id, unsigned slot);
// Lines below this level are not written: MULTINODE_LOG_LEVEL=debug|info|warning|error
// at the start of the process (info when unset).
LogLevel log_level() noexcept;
// Writes prefix, message and newline with a single write(2), so that lines of
// processes sharing a terminal or a file never interleave.
void log_line(LogLevel level, std::string_view message);

// log(LogLevel::info, "worker ", id, " is ready"): the arguments streamed into one line.
template <typename... Args>
void log(LogLevel level, const Args&... args) {
  if (level < log_level()) return;
  std::ostringstream line;
  (line << ... << args);
  log_line(level, line.str());
}

}  // namespace multinode::detail

// Log lines that name their process (log.hpp).
#include "common/log.hpp"

#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace multinode::detail {
namespace {

LogLevel level_from_environment() {
  const char* value = std::getenv("MULTINODE_LOG_LEVEL");
  if (value == nullptr) return LogLevel::info;
  std::string_view name(value);
  if (name == "debug") return LogLevel::debug;
  if (name == "warning") return LogLevel::warning;
  if (name == "error") return LogLevel::error;
  return LogLevel::info;
}

const LogLevel current_level = level_from_environment();
std::string prefix = "multinode[pid " + std::to_string(::getpid()) + "] ";

}  // namespace

void set_log_identity(bool is_master, std::uint32_t id, unsigned slot) {
  const std::string pid = std::to_string(::getpid());
  if (is_master) {
    prefix = "multinode[master pid " + pid + "] ";
  } else {
    prefix =
        "multinode[worker " + std::to_string(id) + " slot " + std::to_string(slot) + " pid " + pid + "] ";
  }
}

LogLevel log_level() noexcept {
  return current_level;
}

void log_line(LogLevel level, std::string_view message) {
  if (level < current_level) return;
  std::string line;
  line.reserve(prefix.size() + message.size() + 12);
  line += prefix;
  if (level == LogLevel::warning) line += "warning: ";
  if (level == LogLevel::error) line += "error: ";
  line += message;
  line += '\n';
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: nothing sensible to do
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace multinode::detail

// Resident memory of a process, from /proc/PID/statm (process_memory.hpp).
#include "common/process_memory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string>

namespace multinode::detail {

std::optional<std::uint64_t> resident_bytes(pid_t pid) {
  // One read of a file of a few dozen bytes: no stream, no allocation past the path.
  const std::string path = "/proc/" + std::to_string(pid) + "/statm";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char text[128];
  const ssize_t got = ::read(fd, text, sizeof text);
  ::close(fd);
  if (got <= 0) return std::nullopt;
  // "size resident shared text lib data dt": the second field, in pages.
  const char* const end = text + got;
  const char* at = text;
  while (at < end && *at != ' ') ++at;
  if (at == end) return std::nullopt;
  ++at;
  std::uint64_t pages = 0;
  const auto [stop, error] = std::from_chars(at, end, pages);
  if (error != std::errc{} || stop == at) return std::nullopt;
  static const long page_size = ::sysconf(_SC_PAGESIZE);
  return pages * static_cast<std::uint64_t>(page_size);
}

}  // namespace multinode::detail

// Log lines that name their process, as text or JSON, on stderr or in a file (log.hpp).
#include "common/log.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

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
bool identity_is_master = true;
std::uint32_t identity_id = 0;
unsigned identity_slot = 0;

bool json_format = false;
std::string file_path;          // empty: stderr
int output_fd = STDERR_FILENO;  // the file's fd keeps its number across reopens

int open_log_file(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

std::int64_t now_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

// Length of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0 with *bad set to the length of the
// ill-formed part to replace by one U+FFFD (its maximal subpart, at least one byte).
std::size_t utf8_sequence(std::string_view text, std::size_t i, std::size_t* bad) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    *bad = 1;
    return 0;
  }
  for (std::size_t k = 1; k < length; ++k) {
    const bool in_range =
        i + k < text.size() && byte(i + k) >= (k == 1 ? low : 0x80) && byte(i + k) <= (k == 1 ? high : 0xBF);
    if (!in_range) {
      *bad = k;
      return 0;
    }
  }
  return length;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      std::size_t bad = 0;
      const std::size_t length = utf8_sequence(text, i, &bad);
      if (length > 0) {
        out.append(text.substr(i, length));
        i += length;
      } else {
        out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        i += bad;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void write_line(const std::string& line) {
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(output_fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the output is gone: nothing sensible to do
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

void set_log_identity(bool is_master, std::uint32_t id, unsigned slot) {
  identity_is_master = is_master;
  identity_id = id;
  identity_slot = slot;
  const std::string pid = std::to_string(::getpid());
  if (is_master) {
    prefix = "multinode[master pid " + pid + "] ";
  } else {
    prefix =
        "multinode[worker " + std::to_string(id) + " slot " + std::to_string(slot) + " pid " + pid + "] ";
  }
}

void set_log_relayed() {
  prefix = "multinode: ";
}

LogLevel log_level() noexcept {
  return current_level;
}

void set_log_output(const std::string& path, bool json) {
  if (!path.empty()) {
    const int fd = open_log_file(path);
    if (fd < 0) {
      throw std::system_error(errno, std::generic_category(),
                              "cannot open the log file " + path +
                                  " (Options::log_file): create its directory, let this user "
                                  "write there, or leave log_file empty for stderr");
    }
    if (output_fd != STDERR_FILENO) ::close(output_fd);
    output_fd = fd;
  } else if (output_fd != STDERR_FILENO) {
    ::close(output_fd);
    output_fd = STDERR_FILENO;
  }
  file_path = path;
  json_format = json;
}

void reopen_log_file() {
  if (file_path.empty()) return;
  const int fd = open_log_file(file_path);
  if (fd < 0) {
    const int error = errno;
    log(LogLevel::error, "cannot reopen the log file ", file_path, ": ", std::strerror(error),
        "; still writing to the file opened before");
    return;
  }
  // dup3 puts the new file at the old fd number in one step: no line, from any
  // thread, ever finds the fd closed.
  if (fd != output_fd) {
    ::dup3(fd, output_fd, O_CLOEXEC);
    ::close(fd);
  }
  log(LogLevel::info, "log file reopened (SIGUSR1)");
}

void log_line(LogLevel level, std::string_view message) {
  if (level < current_level) return;
  std::string line;
  if (json_format) {
    line =
        json_log_line(now_ms(), level, identity_is_master, identity_id, identity_slot, ::getpid(), message);
  } else {
    line.reserve(prefix.size() + message.size() + 12);
    line += prefix;
    if (level == LogLevel::warning) line += "warning: ";
    if (level == LogLevel::error) line += "error: ";
    line += message;
    line += '\n';
  }
  write_line(line);
}

std::string json_log_line(std::int64_t time_ms, LogLevel level, bool is_master, std::uint32_t id,
                          unsigned slot, pid_t pid, std::string_view message) {
  const std::time_t seconds = static_cast<std::time_t>(time_ms / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char time[96];  // room for any int the fields could hold (-Wformat-truncation)
  std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(time_ms % 1000));
  std::string line;
  line.reserve(message.size() + 128);
  line += "{\"time\":\"";
  line += time;
  line += "\",\"level\":\"";
  line += level_name(level);
  line += "\",\"role\":\"";
  line += is_master ? "master" : "worker";
  line += "\",\"id\":";
  line += std::to_string(id);
  line += ",\"slot\":";
  line += std::to_string(slot);
  line += ",\"pid\":";
  line += std::to_string(pid);
  line += ",\"message\":";
  append_json_string(line, message);
  line += "}\n";
  return line;
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

void LogReopenFanout::worker_ready(pid_t pid) {
  const auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  it->second.ready = true;
  if (it->second.reopen_pending) {
    it->second.reopen_pending = false;
    ::kill(pid, SIGUSR1);
  }
}

void LogReopenFanout::reopen_all() {
  reopen_log_file();
  for (auto& [pid, worker] : workers_) {
    if (worker.ready) {
      ::kill(pid, SIGUSR1);
    } else {
      worker.reopen_pending = true;  // it may have opened the file before the rename
    }
  }
}

}  // namespace multinode::detail

// Log lines that say which process wrote them, on stderr or in a file, as text:
//   multinode[master pid 4242] worker 3 (slot 1, pid 4250) exited with status 1
//   multinode[worker 3 slot 1 pid 4250] stopping: the master went away
// or as JSON, one object per line:
//   {"time":"2026-12-01T10:09:00.123Z","level":"info","role":"worker","id":3,"slot":1,"pid":4250,"message":"..."}
// Each line is one write(2); a file is opened with O_APPEND, so lines of processes
// sharing it never tear or merge.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

namespace multinode::detail {

enum class LogLevel { debug = 0, info = 1, warning = 2, error = 3 };

// Set by listen() in each process: role and identity for the line prefix.
void set_log_identity(bool is_master, std::uint32_t id, unsigned slot);
// A worker of `multinode run`: its output goes through the supervisor, which puts
// "[worker ID slot S pid P]" before each line already; text lines start "multinode: ".
void set_log_relayed();
// Lines below this level are not written: MULTINODE_LOG_LEVEL=debug|info|warning|error
// at the start of the process (info when unset).
LogLevel log_level() noexcept;
// Where lines go and in which form: an empty path is stderr. A path is opened
// O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0640; std::system_error naming the
// path when it cannot be.
void set_log_output(const std::string& path, bool json);
// Opens the path again (after logrotate renamed the file) and puts the new file in
// place of the old one. When that fails, lines keep going to the old file and one
// error line says why. Does nothing when logging to stderr.
void reopen_log_file();
// Writes one line with a single write(2), so that lines of processes sharing a
// terminal or a file never interleave.
void log_line(LogLevel level, std::string_view message);

// One JSON log line, newline included. message is escaped: quotes, backslashes and
// control characters; bytes that are not UTF-8 become U+FFFD. time_ms is
// milliseconds since the Unix epoch, written as RFC 3339 UTC ("...T10:09:00.123Z").
std::string json_log_line(std::int64_t time_ms, LogLevel level, bool is_master, std::uint32_t id,
                          unsigned slot, pid_t pid, std::string_view message);
// The JSON string for text, quotes included (the escaping of json_log_line).
std::string json_string(std::string_view text);

// The master's part of SIGUSR1: it reopens its own file and signals every worker
// to reopen theirs. Only workers that reported ready get SIGUSR1 (before that
// they may not handle it yet, and its default action kills); a worker that was
// starting when a reopen was asked for is signalled once it is ready.
class LogReopenFanout {
 public:
  void worker_started(pid_t pid) { workers_[pid] = Worker{}; }
  void worker_ready(pid_t pid);
  void worker_exited(pid_t pid) { workers_.erase(pid); }
  void reopen_all();

 private:
  struct Worker {
    bool ready = false;
    bool reopen_pending = false;
  };
  std::map<pid_t, Worker> workers_;
};

// log(LogLevel::info, "worker ", id, " is ready"): the arguments streamed into one line.
template <typename... Args>
void log(LogLevel level, const Args&... args) {
  if (level < log_level()) return;
  std::ostringstream line;
  (line << ... << args);
  log_line(level, line.str());
}

}  // namespace multinode::detail

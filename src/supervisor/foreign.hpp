// Foreign workers (`multinode run -- PROGRAM`, docs/cli.md): the pure parts of
// speaking systemd's protocols to a program that knows nothing of multinode:
// the sd_notify(3) datagrams it sends, the {fd}/{port}/{id}/{slot} placeholders of
// its arguments, and the cutting of its output into bounded lines.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::detail {

// What one NOTIFY_SOCKET datagram says ("READY=1\nSTATUS=...\n"): newline-separated
// KEY=VALUE assignments; unknown keys are ignored, as systemd does.
struct NotifyMessage {
  bool ready = false;                 // READY=1
  bool watchdog = false;              // WATCHDOG=1: a heartbeat
  bool stopping = false;              // STOPPING=1
  bool reloading = false;             // RELOADING=1
  std::optional<std::string> status;  // STATUS=... (bounded by the datagram's size)
};
NotifyMessage parse_notify(std::string_view datagram);

// The values a worker's arguments may name.
struct Placeholders {
  std::string fd;  // the first listening socket's fd: "3"
  std::string port;
  std::string id;
  std::string slot;
};
// Every "{fd}", "{port}", "{id}" and "{slot}" in each argument replaced; any other
// brace text is left as it is.
std::vector<std::string> substitute_placeholders(const std::vector<std::string>& args,
                                                 const Placeholders& values);

// The program execve() should run for name: name itself when it has a slash,
// else the first executable file of that name in path_env (PATH's value, ':'
// separated; an empty entry is the current directory); nullopt when none.
std::optional<std::string> find_program(const std::string& name, const char* path_env);

// Cuts a byte stream into lines of at most max_line bytes (newline not counted).
// A longer line comes out in pieces, each but the last marked `continues`.
class LineSplitter {
 public:
  struct Line {
    std::string text;
    bool continues = false;  // cut at max_line: the next line is the rest of it
  };
  explicit LineSplitter(std::size_t max_line) : max_line_(max_line == 0 ? 1 : max_line) {}
  // The lines completed by bytes (appended to out).
  void feed(std::string_view bytes, std::vector<Line>& out);
  // At the end of the stream: the last line if it had no newline.
  std::optional<Line> finish();

 private:
  std::size_t max_line_;
  std::string partial_;
};

}  // namespace multinode::detail

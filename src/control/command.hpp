// What the master's operator interface reads from untrusted bytes: one command
// line on the control socket (Options::control_socket), and the one HTTP request
// the metrics endpoint answers (Options::metrics_listen). Both parsers are pure
// functions of what the client sent so far, so that a reply never depends on how
// the bytes were cut into reads (fuzz/control_command_fuzz.cpp checks it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace multinode::detail {

enum class CommandKind { status, metrics, reload, scale, stop };

struct Command {
  CommandKind kind = CommandKind::status;
  unsigned workers = 0;  // scale N: the number of workers asked for
};

// A command line is at most this long, its newline included: the longest valid
// one ("scale 1024") is ten bytes; anything longer is cut off.
inline constexpr std::size_t max_command_line = 256;
// scale N takes at most this many workers: a mistyped "scale 40000" must not
// fork forty thousand processes.
inline constexpr unsigned max_scale_workers = 1024;

struct CommandParse {
  enum class Outcome {
    incomplete,  // no newline yet and still within max_command_line: read on
    command,     // `command` holds it
    error,       // `error` is the one line to answer (no newline), then close
  };
  Outcome outcome = Outcome::incomplete;
  Command command;
  std::string error;
};

// The first line of what the client sent (bytes after its newline are ignored).
// A line ends with LF, or CR LF; words are separated by spaces or tabs, blanks
// around them are ignored. `at_end` says the client closed its side: what it sent
// is then the whole line, newline or not (nothing at all stays incomplete).
CommandParse parse_command(std::string_view received, bool at_end = false);

// The metrics endpoint's request: GET (or HEAD) /metrics, HTTP/1.0 or 1.1.
inline constexpr std::size_t max_metrics_request = 8192;  // request line and headers, bytes

enum class MetricsRequest {
  incomplete,          // no blank line yet, nothing wrong so far: read on
  get,                 // 200 with the metrics
  head,                // 200, headers only
  not_found,           // 404: another path
  method_not_allowed,  // 405: another method
  bad_request,         // 400: not HTTP/1.x as RFC 9112 writes it
  too_large,           // 431: no end of the headers within max_metrics_request bytes
};

// Strict: CRLF line ends only, one space between the three parts of the request
// line, header names are tokens, values hold no control characters, no obs-fold.
// The query string of /metrics?... is ignored. A request body is not read (the
// connection closes after the response).
MetricsRequest parse_metrics_request(std::string_view received);

// "HOST:PORT" of Options::metrics_listen: "127.0.0.1:9100", "[::1]:9100", "localhost:9100",
// ":9100" (every address). nullopt when it is not of that form or the port is not 0-65535.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<HostPort> split_host_port(std::string_view text);

}  // namespace multinode::detail

// Parsing operator commands and the metrics request (command.hpp).
#include "control/command.hpp"

#include <vector>

namespace multinode::detail {
namespace {

bool blank(char c) {
  return c == ' ' || c == '\t';
}

// The line quoted for an error message: printable ASCII as is, the rest as \xNN,
// so that the reply stays one line of text whatever the client sent.
std::string quoted(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && blank(line[at])) ++at;
    const std::size_t start = at;
    while (at < line.size() && !blank(line[at])) ++at;
    if (at > start) words.push_back(line.substr(start, at - start));
  }
  return words;
}

CommandParse error(std::string text) {
  CommandParse parse;
  parse.outcome = CommandParse::Outcome::error;
  parse.error = "error: " + std::move(text);
  return parse;
}

CommandParse command(CommandKind kind, unsigned workers = 0) {
  CommandParse parse;
  parse.outcome = CommandParse::Outcome::command;
  parse.command = {kind, workers};
  return parse;
}

std::optional<unsigned> small_decimal(std::string_view word, unsigned max) {
  if (word.empty() || word.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (const char c : word) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

constexpr std::string_view command_list = "status, metrics, reload, scale N, stop";

CommandParse parse_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto words = words_of(line);
  if (words.empty()) return error("empty command line: send one of " + std::string(command_list));
  const std::string_view verb = words.front();
  struct Simple {
    std::string_view name;
    CommandKind kind;
  };
  static constexpr Simple simple[] = {{"status", CommandKind::status},
                                      {"metrics", CommandKind::metrics},
                                      {"reload", CommandKind::reload},
                                      {"stop", CommandKind::stop}};
  for (const auto& s : simple) {
    if (verb != s.name) continue;
    if (words.size() > 1) return error(quoted(verb) + " takes no argument");
    return command(s.kind);
  }
  if (verb == "scale") {
    const auto workers = words.size() == 2 ? small_decimal(words[1], max_scale_workers) : std::nullopt;
    if (!workers) {
      return error("scale takes one number of workers, 0 to " + std::to_string(max_scale_workers) +
                   ", e.g. \"scale 4\"");
    }
    return command(CommandKind::scale, *workers);
  }
  return error("unknown command " + quoted(line) + ": send one of " + std::string(command_list));
}

// RFC 9110 tchar.
bool token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool token(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!token_char(c)) return false;
  }
  return true;
}

// field-value: VCHAR, obs-text, SP and HTAB.
bool field_value(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == 0x7f || (byte < 0x20 && c != '\t')) return false;
  }
  return true;
}

// origin-form's visible characters (the path and query are not decoded).
bool target(std::string_view text) {
  if (text.empty() || text.front() != '/') return false;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) return false;
  }
  return true;
}

MetricsRequest parse_request_line(std::string_view line) {
  const auto first = line.find(' ');
  if (first == std::string_view::npos) return MetricsRequest::bad_request;
  const auto second = line.find(' ', first + 1);
  if (second == std::string_view::npos) return MetricsRequest::bad_request;
  const std::string_view method = line.substr(0, first);
  const std::string_view path = line.substr(first + 1, second - first - 1);
  const std::string_view version = line.substr(second + 1);
  if (!token(method) || !target(path)) return MetricsRequest::bad_request;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return MetricsRequest::bad_request;
  const std::string_view route = path.substr(0, path.find('?'));
  if (route != "/metrics") return MetricsRequest::not_found;
  if (method == "GET") return MetricsRequest::get;
  if (method == "HEAD") return MetricsRequest::head;
  return MetricsRequest::method_not_allowed;
}

bool header_line(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || !token(line.substr(0, colon))) return false;
  return field_value(line.substr(colon + 1));
}

}  // namespace

CommandParse parse_command(std::string_view received, bool at_end) {
  const auto newline = received.find('\n');
  if (newline != std::string_view::npos && newline < max_command_line) {
    return parse_line(received.substr(0, newline));
  }
  if (newline != std::string_view::npos || received.size() >= max_command_line) {
    return error("command line longer than " + std::to_string(max_command_line) + " bytes");
  }
  if (at_end && !received.empty()) return parse_line(received);
  return {};  // nothing sent at all is nothing to answer
}

MetricsRequest parse_metrics_request(std::string_view received) {
  // Each complete line is checked as it arrives: a bad request is answered at
  // once, not after a timeout, and the verdict is the same however the bytes came.
  std::size_t at = 0;
  std::optional<MetricsRequest> route;
  while (true) {
    const auto lf = received.find('\n', at);
    const std::size_t end = lf == std::string_view::npos ? received.size() : lf + 1;
    if (end > max_metrics_request) return MetricsRequest::too_large;
    if (lf == std::string_view::npos) return MetricsRequest::incomplete;
    if (lf == at || received[lf - 1] != '\r') return MetricsRequest::bad_request;  // bare LF
    const std::string_view line = received.substr(at, lf - 1 - at);
    if (!route) {
      route = parse_request_line(line);
      if (*route == MetricsRequest::bad_request) return *route;
    } else if (line.empty()) {
      return *route;
    } else if (blank(line.front()) || !header_line(line)) {
      return MetricsRequest::bad_request;  // obs-fold, or not name: value
    }
    at = lf + 1;
  }
}

std::optional<HostPort> split_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.empty()) return std::nullopt;
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 literal needs its brackets: [::1]:9100
  }
  const auto number = small_decimal(port, 65535);
  if (!number) return std::nullopt;
  return HostPort{std::string(host), static_cast<std::uint16_t>(*number)};
}

}  // namespace multinode::detail

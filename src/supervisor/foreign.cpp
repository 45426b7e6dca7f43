// The pure parts of foreign workers (foreign.hpp).
#include "supervisor/foreign.hpp"

#include <sys/stat.h>
#include <unistd.h>

namespace multinode::detail {

NotifyMessage parse_notify(std::string_view datagram) {
  NotifyMessage message;
  while (!datagram.empty()) {
    const auto end = datagram.find('\n');
    const std::string_view line = datagram.substr(0, end);
    datagram = end == std::string_view::npos ? std::string_view() : datagram.substr(end + 1);
    if (line == "READY=1") message.ready = true;
    if (line == "WATCHDOG=1") message.watchdog = true;
    if (line == "STOPPING=1") message.stopping = true;
    if (line == "RELOADING=1") message.reloading = true;
    if (line.starts_with("STATUS=")) message.status = std::string(line.substr(7));
  }
  return message;
}

std::vector<std::string> substitute_placeholders(const std::vector<std::string>& args,
                                                 const Placeholders& values) {
  const std::pair<std::string_view, const std::string*> names[] = {
      {"{fd}", &values.fd}, {"{port}", &values.port}, {"{id}", &values.id}, {"{slot}", &values.slot}};
  std::vector<std::string> result;
  result.reserve(args.size());
  for (const auto& arg : args) {
    std::string out;
    std::size_t i = 0;
    while (i < arg.size()) {
      bool replaced = false;
      if (arg[i] == '{') {
        for (const auto& [name, value] : names) {
          if (std::string_view(arg).substr(i, name.size()) == name) {
            out += *value;
            i += name.size();
            replaced = true;
            break;
          }
        }
      }
      if (!replaced) out += arg[i++];
    }
    result.push_back(std::move(out));
  }
  return result;
}

std::optional<std::string> find_program(const std::string& name, const char* path_env) {
  const auto executable = [](const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
  };
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return name;
    return std::nullopt;
  }
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = path.find(':');
    const std::string_view dir = path.substr(0, colon);
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name;
    if (executable(candidate)) return candidate;
    if (colon == std::string_view::npos) return std::nullopt;
    path.remove_prefix(colon + 1);
  }
}

void LineSplitter::feed(std::string_view bytes, std::vector<Line>& out) {
  while (!bytes.empty()) {
    const auto newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    const std::size_t room = max_line_ - partial_.size();
    if (piece.size() > room) {  // the line goes past the bound: out with what fits
      partial_.append(piece.substr(0, room));
      out.push_back({std::move(partial_), true});
      partial_.clear();
      bytes.remove_prefix(room);
      continue;
    }
    partial_.append(piece);
    if (newline == std::string_view::npos) return;
    out.push_back({std::move(partial_), false});
    partial_.clear();
    bytes.remove_prefix(newline + 1);
  }
}

std::optional<LineSplitter::Line> LineSplitter::finish() {
  if (partial_.empty()) return std::nullopt;
  Line last{std::move(partial_), false};
  partial_.clear();
  return last;
}

}  // namespace multinode::detail

// libFuzzer target for what the operator interface parses from clients: command
// lines (parse_command), the metrics request (parse_metrics_request) and, for
// good measure, HOST:PORT (split_host_port). The first byte picks a cut; the
// verdict on every prefix must be the one a single read gives once the bytes are
// all in (so the answer never depends on how the client's bytes arrived), an
// error line is one line, and nothing past the bounds is ever waited for.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target control_command_fuzz
//   build/fuzz/fuzz/control_command_fuzz fuzz/corpus/control_command_fuzz
#include "control/command.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace multinode::detail;

namespace {

void check_command(std::string_view input, std::size_t cut) {
  const CommandParse whole = parse_command(input);
  const CommandParse at_end = parse_command(input, true);
  if (whole.outcome != CommandParse::Outcome::incomplete) {
    // Complete: closing the connection changes nothing.
    if (at_end.outcome != whole.outcome || at_end.error != whole.error) __builtin_trap();
  } else if (input.size() >= max_command_line || input.find('\n') != std::string_view::npos) {
    __builtin_trap();  // a line past the bound is never waited for
  }
  for (const CommandParse* parse : {&whole, &at_end}) {
    if (parse->outcome == CommandParse::Outcome::error) {
      if (parse->error.rfind("error: ", 0) != 0 || parse->error.find('\n') != std::string::npos)
        __builtin_trap();
    }
    if (parse->outcome == CommandParse::Outcome::command && parse->command.kind == CommandKind::scale &&
        parse->command.workers > max_scale_workers) {
      __builtin_trap();
    }
  }
  // A prefix is either still incomplete or already has the final verdict.
  const CommandParse prefix = parse_command(input.substr(0, cut));
  if (prefix.outcome != CommandParse::Outcome::incomplete &&
      (prefix.outcome != whole.outcome || prefix.error != whole.error ||
       prefix.command.kind != whole.command.kind || prefix.command.workers != whole.command.workers)) {
    __builtin_trap();
  }
}

void check_request(std::string_view input, std::size_t cut) {
  const MetricsRequest whole = parse_metrics_request(input);
  if (whole == MetricsRequest::incomplete && input.size() > max_metrics_request) __builtin_trap();
  const MetricsRequest prefix = parse_metrics_request(input.substr(0, cut));
  if (prefix != MetricsRequest::incomplete && prefix != whole) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = input.empty() ? 0 : data[0] % (input.size() + 1);
  check_command(input, cut);
  check_request(input, cut);
  if (const auto where = split_host_port(input)) {
    if (where->host.find(':') != std::string::npos && input.front() != '[') __builtin_trap();
  }
  return 0;
}

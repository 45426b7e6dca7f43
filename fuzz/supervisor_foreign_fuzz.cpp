// libFuzzer target for what a foreign worker sends the supervisor: its
// NOTIFY_SOCKET datagrams (parse_notify) and its output (LineSplitter), and the
// operator's --listen entries (parse_listen_address). The first byte picks a line
// bound and a cut: the lines must be the same wherever the output is cut, none
// past the bound, and together (with the newlines) exactly the input.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target supervisor_foreign_fuzz
//   build/fuzz/fuzz/supervisor_foreign_fuzz fuzz/corpus/supervisor_foreign_fuzz
#include "supervisor/foreign.hpp"

#include "net/listeners.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace multinode::detail;

namespace {

std::vector<LineSplitter::Line> split(std::size_t bound, std::string_view a, std::string_view b) {
  LineSplitter splitter(bound);
  std::vector<LineSplitter::Line> lines;
  splitter.feed(a, lines);
  splitter.feed(b, lines);
  if (auto last = splitter.finish()) lines.push_back(std::move(*last));
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t bound = 1 + data[0] % 16;
  const std::size_t cut = input.empty() ? 0 : data[0] % (input.size() + 1);

  const NotifyMessage notice = parse_notify(input);
  if (notice.ready && input.find("READY=1") == std::string_view::npos) __builtin_trap();
  if (notice.status && notice.status->size() > input.size()) __builtin_trap();

  const auto whole = split(bound, input, {});
  const auto parts = split(bound, input.substr(0, cut), input.substr(cut));
  if (whole.size() != parts.size()) __builtin_trap();
  std::string rebuilt;
  for (std::size_t i = 0; i < whole.size(); ++i) {
    if (whole[i].text != parts[i].text || whole[i].continues != parts[i].continues) __builtin_trap();
    if (whole[i].text.size() > bound) __builtin_trap();
    if (whole[i].continues && whole[i].text.size() != bound) __builtin_trap();
    rebuilt += whole[i].text;
    if (!whole[i].continues) rebuilt += '\n';
  }
  // Every byte is in a line: the input, with a newline added if it had none at its end.
  std::string expected(input);
  if (!expected.empty() && expected.back() != '\n') expected += '\n';
  if (rebuilt != expected && !(expected.empty() && rebuilt.empty())) __builtin_trap();

  std::string why;
  const auto address = parse_listen_address(std::string(input), &why);
  if (!address && why.empty()) __builtin_trap();
  if (address && address->name.find(':') != std::string::npos) __builtin_trap();
  return 0;
}

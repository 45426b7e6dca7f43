// Encoding and decoding of the worker environment (environment.hpp).
#include "common/environment.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace multinode::detail::environment {
namespace {

// The room reserved for LISTEN_PID's value: any pid_t in decimal and the NUL.
constexpr std::size_t listen_pid_room = 23;

std::string make_entry(const char* name, const std::string& value) {
  return std::string(name) + "=" + value;
}

}  // namespace

const char* find(const char* const* envp, std::string_view name) noexcept {
  if (envp == nullptr) return nullptr;
  for (const char* const* e = envp; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.size() > name.size() && entry[name.size()] == '=' && entry.substr(0, name.size()) == name) {
      return *e + name.size() + 1;
    }
  }
  return nullptr;
}

bool is_own_entry(std::string_view entry) noexcept {
  auto names = [entry](std::string_view n) {
    return entry.size() > n.size() && entry[n.size()] == '=' && entry.substr(0, n.size()) == n;
  };
  for (const char* name : all_variables) {
    if (names(name)) return true;
  }
  for (const char* name : notify_variables) {
    if (names(name)) return true;
  }
  return false;
}

WorkerEntries encode_worker(const WorkerStart& start) {
  std::string names;
  for (std::size_t i = 0; i < start.listen_names.size(); ++i) {
    if (i > 0) names += ':';
    names += start.listen_names[i];
  }
  const std::size_t count = start.listen_names.size();
  WorkerEntries out;
  out.entries.push_back(make_entry(worker_id, std::to_string(start.id)));
  out.entries.push_back(make_entry(slot, std::to_string(start.slot)));
  // The control channel's end follows the listening sockets.
  out.entries.push_back(make_entry(control_fd, std::to_string(first_listen_fd + count)));
  out.entries.push_back(make_entry(master_pid, std::to_string(start.master_pid)));
  if (start.heartbeat)
    out.entries.push_back(make_entry(heartbeat_fd, std::to_string(first_listen_fd + count + 1)));
  if (start.balance_entry >= 0) {
    const std::size_t table = first_listen_fd + count + 1 + (start.heartbeat ? 1 : 0);
    out.entries.push_back(make_entry(balance_fd, std::to_string(table)));
    out.entries.push_back(make_entry(balance_entry, std::to_string(start.balance_entry)));
  }
  out.entries.push_back(make_entry(listen_fds, std::to_string(count)));
  out.entries.push_back(make_entry(listen_fdnames, names));
  out.entries.push_back(make_entry(listen_pid, std::string(listen_pid_room, ' ')));
  return out;
}

void write_listen_pid(char* value, pid_t pid) noexcept {
  char digits[listen_pid_room];
  int length = 0;
  for (; pid > 0; pid /= 10) digits[length++] = static_cast<char>('0' + pid % 10);
  for (int i = 0; i < length; ++i) value[i] = digits[length - 1 - i];
  value[length] = '\0';
}

std::optional<long> decode_number(const char* text) noexcept {
  if (text == nullptr || *text < '0' || *text > '9') return std::nullopt;  // no sign, no blank
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || errno == ERANGE) return std::nullopt;
  return value;
}

bool names_a_worker(const char* const* envp) noexcept {
  return find(envp, worker_id) != nullptr;
}

std::optional<WorkerIdentity> decode_worker(const char* const* envp) {
  const auto id = decode_number(find(envp, worker_id));
  const auto slot_number = decode_number(find(envp, slot));
  const auto control = decode_number(find(envp, control_fd));
  if (!id || !slot_number || !control) return std::nullopt;
  if (*id > std::numeric_limits<std::uint32_t>::max() || *slot_number > UINT_MAX || *control > INT_MAX) {
    return std::nullopt;
  }
  WorkerIdentity identity;
  identity.id = static_cast<std::uint32_t>(*id);
  identity.slot = static_cast<unsigned>(*slot_number);
  identity.control_fd = static_cast<int>(*control);
  const auto master = decode_number(find(envp, master_pid));
  identity.master_pid = master && *master <= INT_MAX ? static_cast<pid_t>(*master) : 0;
  const auto heartbeat = decode_number(find(envp, heartbeat_fd));
  identity.heartbeat_fd = heartbeat && *heartbeat <= INT_MAX ? static_cast<int>(*heartbeat) : -1;
  const auto table = decode_number(find(envp, balance_fd));
  const auto entry = decode_number(find(envp, balance_entry));
  if (table && entry && *table < INT_MAX && *entry <= INT_MAX) {
    identity.balance_fd = static_cast<int>(*table);
    identity.balance_entry = static_cast<int>(*entry);
  }
  return identity;
}

bool names_a_run_worker(const char* const* envp) noexcept {
  return find(envp, run_id) != nullptr && find(envp, worker_id) == nullptr;
}

std::optional<RunWorkerIdentity> decode_run_worker(const char* const* envp) {
  const auto id = decode_number(find(envp, run_id));
  const auto slot_number = decode_number(find(envp, slot));
  if (!id || !slot_number || *id > std::numeric_limits<std::uint32_t>::max() || *slot_number > UINT_MAX)
    return std::nullopt;
  RunWorkerIdentity identity;
  identity.id = static_cast<std::uint32_t>(*id);
  identity.slot = static_cast<unsigned>(*slot_number);
  const auto count = decode_number(find(envp, run_nodes));
  identity.nodes = count && *count <= UINT_MAX ? static_cast<unsigned>(*count) : 0;
  if (const char* directory = find(envp, mesh)) identity.mesh = directory;
  const char* master = find(envp, mesh_master);
  identity.master = master != nullptr && std::string_view(master) == "1";
  if (const char* url = find(envp, bridge_url)) identity.bridge = url;
  if (const char* prefix = find(envp, bridge_prefix)) identity.bridge_prefix = prefix;
  // A u64: strtoull, the whole text, digits only.
  if (const char* host = find(envp, bridge_host_id); host != nullptr && *host >= '0' && *host <= '9') {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(host, &end, 10);
    if (*end == '\0' && errno != ERANGE) identity.host_id = value;
  }
  return identity;
}

std::optional<ListenFds> decode_listen_fds(const char* const* envp) {
  const auto pid = decode_number(find(envp, listen_pid));
  const auto count = decode_number(find(envp, listen_fds));
  if (!pid || !count || *pid > INT_MAX || *count <= 0 || *count > max_listen_fds) return std::nullopt;
  ListenFds fds;
  fds.pid = static_cast<pid_t>(*pid);
  fds.count = static_cast<int>(*count);
  if (const char* names_text = find(envp, listen_fdnames)) {
    const std::string_view all(names_text);
    std::size_t start = 0;
    while (true) {
      const auto colon = all.find(':', start);
      fds.names.emplace_back(
          all.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
  }
  return fds;
}

void unset(std::span<const char* const> names) noexcept {
  for (const char* name : names) ::unsetenv(name);
}

}  // namespace multinode::detail::environment

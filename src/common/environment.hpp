// The environment a worker is started with (docs/protocol.md, "Starting a
// worker"): the variable names and their encode/decode functions, in one place
// for the master that writes them (supervisor), the code that takes the
// listening sockets (net, which also serves systemd's LISTEN_* for a master) and
// listen() that reads the worker's identity (core). In common because those three
// folders may not use one another.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace multinode::detail::environment {

// systemd's sd_listen_fds(3) convention: the sockets are at fds 3, 4, ...
inline constexpr const char* listen_fds = "LISTEN_FDS";
inline constexpr const char* listen_pid = "LISTEN_PID";
inline constexpr const char* listen_fdnames = "LISTEN_FDNAMES";
// multinode's own: set only in a worker.
inline constexpr const char* worker_id = "MULTINODE_WORKER_ID";
inline constexpr const char* slot = "MULTINODE_SLOT";
inline constexpr const char* control_fd = "MULTINODE_CONTROL_FD";
inline constexpr const char* master_pid = "MULTINODE_MASTER_PID";
// The worker's heartbeat cell (common/heartbeat.hpp), after the control channel; absent when off.
inline constexpr const char* heartbeat_fd = "MULTINODE_HEARTBEAT_FD";
// The shared load table of even balancing (net/balance.hpp), then the master's
// doorbell and the worker's own wake-up at the next two fds; after the heartbeat cell. With the process's
// entry in the table. Absent when not balanced.
inline constexpr const char* balance_fd = "MULTINODE_BALANCE_FD";
inline constexpr const char* balance_entry = "MULTINODE_BALANCE_ENTRY";
// systemd's sd_notify(3) convention, read by the master only (common/sd_notify.hpp):
// the service manager's datagram socket and its watchdog.
inline constexpr const char* notify_socket = "NOTIFY_SOCKET";
inline constexpr const char* watchdog_usec = "WATCHDOG_USEC";
inline constexpr const char* watchdog_pid = "WATCHDOG_PID";

inline constexpr std::array<const char*, 10> all_variables = {
    listen_fds, listen_pid, listen_fdnames, worker_id,  slot,
    control_fd, master_pid, heartbeat_fd,   balance_fd, balance_entry};
inline constexpr std::array<const char*, 3> listen_variables = {listen_fds, listen_pid, listen_fdnames};
inline constexpr std::array<const char*, 7> worker_variables = {
    worker_id, slot, control_fd, master_pid, heartbeat_fd, balance_fd, balance_entry};
// Not in all_variables (a worker is never given them); is_own_entry() knows them too.
inline constexpr std::array<const char*, 3> notify_variables = {notify_socket, watchdog_usec, watchdog_pid};

// Set by `multinode run` in each of its (foreign) workers (docs/cli.md, docs/protocol.md's
// mesh for workers of `multinode run`), beside MULTINODE_SLOT above: a program on the
// library that sees MULTINODE_ID without MULTINODE_WORKER_ID is a worker of `multinode run`.
inline constexpr const char* run_id = "MULTINODE_ID";
inline constexpr const char* run_nodes = "MULTINODE_NODES";
inline constexpr const char* mesh = "MULTINODE_MESH";           // the broker's directory
inline constexpr const char* mesh_master = "MULTINODE_MASTER";  // "1": holds the master role from the start
// "1": a warm standby of `multinode run --standby` (docs/cli.md, "Standby workers"):
// it prepares, waits without serving, and has no MULTINODE_SLOT until promoted.
inline constexpr const char* standby = "MULTINODE_STANDBY";
// `multinode run --bridge URL [--bridge-prefix P]`; the host id is also what a library
// master gives its own workers (decimal u64, never 0).
inline constexpr const char* bridge_url = "MULTINODE_BRIDGE";
inline constexpr const char* bridge_prefix = "MULTINODE_BRIDGE_PREFIX";
inline constexpr const char* bridge_host_id = "MULTINODE_BRIDGE_HOST_ID";
inline constexpr std::array<const char*, 9> run_variables = {
    run_id, slot, run_nodes, mesh, mesh_master, standby, bridge_url, bridge_prefix, bridge_host_id};

inline constexpr int first_listen_fd = 3;  // SD_LISTEN_FDS_START
// More passed sockets than this is taken for a broken environment.
inline constexpr long max_listen_fds = 1024;

// An environment is a null-terminated array of "NAME=value" entries (environ, envp).
// The value of name in it, or nullptr.
const char* find(const char* const* envp, std::string_view name) noexcept;
// True for an entry ("NAME=value") of one of all_variables or notify_variables: never
// inherited as it is (a worker that had NOTIFY_SOCKET could notify on the master's behalf).
bool is_own_entry(std::string_view entry) noexcept;

// What the master tells a worker.
struct WorkerStart {
  std::uint32_t id = 0;
  unsigned slot = 0;
  pid_t master_pid = 0;
  std::vector<std::string> listen_names;  // one per listening socket, at fds 3, 4, ...
  bool heartbeat = false;                 // a heartbeat cell follows the control channel's fd
  int balance_entry = -1;                 // >= 0: the balance table and doorbell follow
};

// The worker's entries, made before fork(). LISTEN_PID is the last entry, with room
// for any pid: the child writes its own pid there with write_listen_pid().
struct WorkerEntries {
  std::vector<std::string> entries;
  // The offset of LISTEN_PID's value inside entries.back().
  static constexpr std::size_t listen_pid_value_offset =
      std::string_view(listen_pid).size() + 1;  // "LISTEN_PID="
};
WorkerEntries encode_worker(const WorkerStart& start);

// Writes pid's decimal digits and a terminating NUL at value (room for 23 bytes):
// async-signal-safe, for the child between fork() and execve().
void write_listen_pid(char* value, pid_t pid) noexcept;

// A worker's identity as it reads it; nullopt when any of id, slot and control fd
// is missing or not a non-negative decimal number.
struct WorkerIdentity {
  std::uint32_t id = 0;
  unsigned slot = 0;
  int control_fd = -1;
  pid_t master_pid = 0;   // 0 when absent
  int heartbeat_fd = -1;  // -1 when absent (heartbeats off)
  int balance_fd = -1;    // -1 when absent (not balanced); doorbell + 1, wake-up + 2
  int balance_entry = -1;
};
bool names_a_worker(const char* const* envp) noexcept;  // MULTINODE_WORKER_ID is set
std::optional<WorkerIdentity> decode_worker(const char* const* envp);

// A worker of `multinode run` as it reads its environment.
struct RunWorkerIdentity {
  std::uint32_t id = 0;
  unsigned slot = 0;
  unsigned nodes = 0;   // 0 when absent or not a number
  std::string mesh;     // empty: no mesh (a supervisor without the broker)
  bool master = false;  // MULTINODE_MASTER=1
  std::string bridge;   // empty when absent
  std::optional<std::string> bridge_prefix;
  std::uint64_t host_id = 0;  // 0 when absent or not a number
};
// MULTINODE_ID is set and MULTINODE_WORKER_ID is not (that one names a library worker).
bool names_a_run_worker(const char* const* envp) noexcept;
// nullopt when MULTINODE_ID or MULTINODE_SLOT is missing or not a decimal number that fits.
std::optional<RunWorkerIdentity> decode_run_worker(const char* const* envp);

// The listening sockets passed by sd_listen_fds(3)'s convention, as the receiver
// reads them; nullopt when none were passed or LISTEN_PID / LISTEN_FDS are not
// decimal numbers, or LISTEN_FDS is not in 1 .. max_listen_fds.
struct ListenFds {
  pid_t pid = 0;  // the process they are for: any other must ignore them
  int count = 0;
  std::vector<std::string> names;  // LISTEN_FDNAMES split at ':'; may be shorter than count
};
std::optional<ListenFds> decode_listen_fds(const char* const* envp);

// A non-negative decimal number, the whole text; nullopt otherwise (nullptr, empty, sign, junk).
std::optional<long> decode_number(const char* text) noexcept;

// Removes variables from this process's environment (once read, so that a program
// the process starts is not mistaken for a worker).
void unset(std::span<const char* const> names) noexcept;

}  // namespace multinode::detail::environment

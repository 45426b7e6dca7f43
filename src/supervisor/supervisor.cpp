// The master's supervision of its workers (supervisor.hpp).
#include "supervisor/supervisor.hpp"

#include "supervisor/backoff.hpp"
#include "supervisor/foreign.hpp"

#include "common/environment.hpp"
#include "common/log.hpp"
#include "common/process_memory.hpp"

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

extern char** environ;

namespace multinode::detail {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// How often the master reads its workers' resident memory with max_rss: one read
// of /proc/PID/statm per worker, a few microseconds each.
constexpr std::chrono::milliseconds memory_check_interval{1000};
constexpr std::uint64_t mebibyte = std::uint64_t{1024} * 1024;
// After a promotion, how long the next standby's start waits (promote_standby).
constexpr std::chrono::milliseconds standby_refill_delay{200};

// Streamed into one string, as log() does.
template <typename... Args>
std::string text(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::vector<std::string> read_own_argv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::size_t start = 0;
  while (start < all.size()) {
    const auto end = all.find('\0', start);
    argv.push_back(all.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (argv.empty()) argv.emplace_back("multinode-worker");
  return argv;
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return "was killed by SIG" +
           std::string(name != nullptr ? name : std::to_string(WTERMSIG(status)).c_str());
  }
  return "ended with wait status " + std::to_string(status);
}

// Everything the child needs between fork() and execve(), prepared beforehand:
// after fork() in a process that may have threads only async-signal-safe calls are allowed.
struct ExecPlan {
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<int> fds;              // become fds 3, 4, ... in the child
  std::vector<int> scratch;          // room for temporary copies, no allocation after fork
  int scratch_base = 0;              // temporaries go above every fd in use
  char* listen_pid_value = nullptr;  // inside the LISTEN_PID= entry, filled in by the child
  pid_t master_pid = 0;
};

[[noreturn]] void exec_child(ExecPlan& plan) {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // When the master dies the kernel tells the worker, which then stops gracefully.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != plan.master_pid) ::_exit(70);
  const int count = static_cast<int>(plan.fds.size());
  for (int i = 0; i < count; ++i) {
    plan.scratch[i] = ::fcntl(plan.fds[i], F_DUPFD, plan.scratch_base);
    if (plan.scratch[i] < 0) ::_exit(71);
  }
  for (int i = 0; i < count; ++i) {
    if (::dup2(plan.scratch[i], 3 + i) < 0) ::_exit(71);  // dup2 leaves the new fd inheritable
  }
  // Nothing else crosses exec: not the master's clients, not other workers' channels.
  if (::close_range(3 + count, ~0U, 0) != 0) {
    for (int fd = 3 + count; fd < plan.scratch_base + count + 1024; ++fd) ::close(fd);
  }
  // sd_listen_fds(3) wants LISTEN_PID to be the pid of the process the fds are for.
  environment::write_listen_pid(plan.listen_pid_value, ::getpid());
  ::execve("/proc/self/exe", plan.argv.data(), plan.envp.data());
  ::_exit(127);
}

}  // namespace

Supervisor::Supervisor(Host& host, std::vector<ListenSocket> shared)
    : host_(host), shared_(std::move(shared)), argv_(read_own_argv()) {
  if (const auto& command = host_.options().worker_command; !command.empty()) {
    const auto path = find_program(command.front(), std::getenv("PATH"));
    if (!path) {
      throw std::system_error(std::make_error_code(std::errc::no_such_file_or_directory),
                              "cannot run " + command.front() +
                                  ": no executable file of that name (in PATH, or at that path); "
                                  "check the spelling, or give the program's full path");
    }
    program_path_ = *path;
    // What a foreign worker leaves behind comes back to the master (reap_orphans).
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  for (char** e = environ; *e != nullptr; ++e) {
    if (!environment::is_own_entry(*e)) base_env_.emplace_back(*e);
  }
}

Supervisor::~Supervisor() {
  kill_all_and_reap();
  for (auto& [index, s] : slots_) {
    for (const auto& socket : s.own_sockets) ::close(socket.fd);
  }
  for (const auto& socket : shared_) ::close(socket.fd);
}

Supervisor::Slot& Supervisor::slot(unsigned index) {
  Slot& s = slots_[index];
  if (!s.restart_timer) s.restart_timer = std::make_unique<boost::asio::steady_timer>(host_.io());
  return s;
}

const std::vector<ListenSocket>& Supervisor::sockets_for(unsigned index) {
  if (!shared_.empty()) return shared_;
  Slot& s = slot(index);
  if (s.own_sockets.empty()) {
    // Every slot's SO_REUSEPORT socket joins the same group: same addresses, same port.
    std::uint16_t group_port = host_.options().port;
    for (const auto& [other_index, other] : slots_) {
      if (!other.own_sockets.empty()) group_port = local_port(other.own_sockets.front().fd);
    }
    s.own_sockets = bind_listeners(host_.options(), group_port, true);
  }
  return s.own_sockets;
}

std::vector<ListenSocket> Supervisor::sockets_served_by(unsigned index, std::vector<unsigned>* slots) {
  if (!shared_.empty()) return shared_;
  std::vector<ListenSocket> sockets = sockets_for(index);
  std::vector<unsigned> served{index};
  std::size_t total = 0;
  for (const auto& [other_index, other] : slots_) total += other.own_sockets.size();
  // Beyond max_served_sockets each process keeps to its own slot's (and accepts
  // unbalanced): fds of its own for the connections, and no n² fds over the processes.
  if (total <= max_served_sockets) {
    // Removed slots (SIGTTOU) too: their sockets stay in the group, and connections
    // the kernel hashes there are served by whoever holds them.
    for (const auto& [other_index, other] : slots_) {
      if (other_index == index || other.own_sockets.empty()) continue;
      sockets.insert(sockets.end(), other.own_sockets.begin(), other.own_sockets.end());
      served.push_back(other_index);
    }
  }
  if (index == host_.slot()) master_served_slots_ = served;
  if (slots != nullptr) *slots = std::move(served);
  return sockets;
}

bool Supervisor::everyone_serves(unsigned index) const {
  const auto holds = [index](const std::vector<unsigned>& served) {
    return std::find(served.begin(), served.end(), index) != served.end();
  };
  if (balance_ != nullptr && balance_->entry() && !holds(master_served_slots_)) return false;
  for (const auto& [id, child] : children_) {
    if (!child->retiring && child->balance_entry && !holds(child->served_slots)) return false;
  }
  return true;
}

std::uint16_t Supervisor::port() {
  if (!shared_.empty()) return local_port(shared_.front().fd);
  for (const auto& [index, s] : slots_) {
    if (!s.own_sockets.empty()) return local_port(s.own_sockets.front().fd);
  }
  return 0;
}

void Supervisor::start_workers(unsigned first_slot, unsigned count) {
  if (!host_.options().worker_command.empty() && !mesh_) {
    // Made here, not in the constructor: the master has dropped to Options::user by
    // now, so the directory and its socket belong to the workers' user.
    const std::string& control = host_.options().control_socket;
    const auto slash = control.rfind('/');
    const Options& options = host_.options();
    mesh_ = std::make_unique<MeshBroker>(
        host_.io(), slash == std::string::npos ? std::string() : control.substr(0, slash),
        MeshBroker::Limits{options.mesh_join_timeout, options.mesh_max_pending},
        [this](NodeId id, const NotifyMessage& notice) { on_notice(id, notice); });
  }
  for (unsigned i = 0; i < count; ++i) sockets_for(first_slot + i);  // bind everything before any fork
  if (!started_) {
    for (unsigned i = 0; i < count; ++i) starting_slots_.push_back(first_slot + i);
  }
  for (unsigned i = 0; i < count; ++i) spawn(first_slot + i);
}

void Supervisor::spawn(unsigned index) {
  if (!host_.options().worker_command.empty()) {
    if (host_.options().standby == 0 || !promote_standby(index)) spawn_foreign(index);
    return;
  }
  Slot& s = slot(index);
  const NodeId id = next_id_++;
  std::vector<unsigned> served_slots;
  const std::vector<ListenSocket> sockets = sockets_served_by(index, &served_slots);

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    log(LogLevel::error, "cannot create a control channel for slot ", index, ": ", std::strerror(errno),
        " (raise the open-files limit, ulimit -n)");
    return;
  }

  std::vector<std::string> env = base_env_;
  const std::size_t listen_count = sockets.size();
  environment::WorkerStart start{id, index, ::getpid(), std::vector<std::string>(listen_count, "multinode")};
  for (std::size_t i = 0; i < listen_count; ++i) {
    if (!sockets[i].label.empty()) start.listen_names[i] = sockets[i].label;  // Options::listen's NAME
  }
  HeartbeatCell heartbeat;
  if (host_.options().heartbeat_timeout.count() > 0) {
    try {
      heartbeat = HeartbeatCell::create();
      start.heartbeat = true;
    } catch (const std::system_error& e) {
      log(LogLevel::error, "worker in slot ", index, " starts without a heartbeat: ", e.what());
    }
  }
  // Reuseport: a slot added (SIGTTIN, scale) after the others started is one their
  // processes do not hold; its process accepts all it is given, unbalanced (as
  // without balancing), instead of leaving connections there nobody else sees.
  const bool balanced = balance_ != nullptr && (!shared_.empty() || everyone_serves(index));
  if (balance_ != nullptr && !balanced)
    log(LogLevel::info, "worker ", id, " (slot ", index,
        ") accepts unbalanced: not every serving process holds its slot's socket (the ones "
        "started before the slot existed; a rolling restart, SIGHUP, gives each every slot's "
        "socket, up to ",
        max_served_sockets, " sockets)");
  std::optional<unsigned> balance_entry = balanced ? balance_->allocate() : std::nullopt;
  if (balance_entry) start.balance_entry = static_cast<int>(*balance_entry);
  auto entries = environment::encode_worker(start);
  for (auto& e : entries.entries) env.push_back(std::move(e));  // LISTEN_PID stays last

  ExecPlan plan;
  for (auto& a : argv_) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.listen_pid_value = env.back().data() + environment::WorkerEntries::listen_pid_value_offset;
  int highest = pair[1];
  for (const auto& socket : sockets) {
    plan.fds.push_back(socket.fd);
    highest = std::max(highest, socket.fd);
  }
  plan.fds.push_back(pair[1]);
  if (heartbeat) {
    plan.fds.push_back(heartbeat.fd());  // right after the control channel (environment.hpp)
    highest = std::max(highest, heartbeat.fd());
  }
  if (balance_entry) {  // the table, the doorbell, its wake-up, after the heartbeat (environment.hpp)
    for (const int fd : {balance_->table_fd(), balance_->doorbell_fd(), balance_->wake_fd(*balance_entry)}) {
      plan.fds.push_back(fd);
      highest = std::max(highest, fd);
    }
  }
  plan.scratch.resize(plan.fds.size());
  plan.scratch_base = std::max(highest, 3 + static_cast<int>(plan.fds.size())) + 1;
  plan.master_pid = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) exec_child(plan);
  ::close(pair[1]);
  heartbeat.close_fd();  // the mapping stays
  if (pid < 0) {
    if (balance_entry) balance_->release(*balance_entry);
    ::close(pair[0]);
    log(LogLevel::error, "cannot start a worker for slot ", index, ": fork failed: ", std::strerror(errno));
    return;
  }

  auto child = std::make_unique<Child>();
  child->info = WorkerInfo{id, index, pid};
  child->started = clock::now();
  child->control = std::make_unique<ControlChannel>(host_.io(), pair[0]);
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    log(LogLevel::error, "pidfd_open failed for pid ", pid, ": ", std::strerror(errno),
        " (Linux 5.3 or newer is needed)");
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (balance_entry) balance_->release(*balance_entry);
    return;
  }
  child->pidfd = std::make_unique<boost::asio::posix::stream_descriptor>(host_.io(), pidfd);
  child->ready_timer = std::make_unique<boost::asio::steady_timer>(host_.io());
  child->heartbeat = std::move(heartbeat);
  child->balance_entry = balance_entry;
  child->served_slots = std::move(served_slots);
  s.current = id;

  child->control->start([this, id](const Record& record, int fd) { on_record(id, record, fd); },
                        [](std::error_code) { /* the exit is seen through the pidfd */ });
  child->pidfd->async_wait(boost::asio::posix::descriptor_base::wait_read,
                           [this, id, pid](boost::system::error_code error) {
                             if (error == boost::asio::error::operation_aborted) return;
                             int status = 0;
                             while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                             }
                             on_exit(id, status);
                           });
  child->ready_timer->expires_after(host_.options().ready_timeout);
  child->ready_timer->async_wait([this, id](boost::system::error_code error) {
    if (error) return;
    const auto it = children_.find(id);
    if (it == children_.end() || it->second->ready) return;
    log(LogLevel::warning, describe(*it->second), " did not report ready within ",
        host_.options().ready_timeout.count(), " ms: killing it");
    ::kill(it->second->info.pid, SIGKILL);
  });

  const WorkerInfo info = child->info;
  children_.emplace(id, std::move(child));
  log(LogLevel::debug, "started worker ", id, " (slot ", index, ", pid ", pid, ")");
  if (start.heartbeat) arm_heartbeat_check();
  if (host_.options().max_rss > 0) arm_memory_check();
  host_.worker_started(info);
}

void Supervisor::arm_heartbeat_check() {
  if (heartbeat_armed_ || stopping_) return;
  if (!heartbeat_timer_) heartbeat_timer_ = std::make_unique<boost::asio::steady_timer>(host_.io());
  heartbeat_armed_ = true;
  heartbeat_timer_->expires_after(heartbeat_check_interval(host_.options().heartbeat_timeout));
  heartbeat_timer_->async_wait([this](boost::system::error_code error) {
    if (error) return;
    heartbeat_armed_ = false;
    if (stopping_) return;
    check_heartbeats();
    // Only while there are workers: an idle timer would keep the master's loop alive.
    if (!children_.empty()) arm_heartbeat_check();
  });
}

bool Supervisor::heartbeat_late(const Child& child) const {
  if (child.foreign) {
    // A prepared standby's too: one whose loop is stuck would be promoted to serve nothing.
    if (!child.watchdog || !(child.ready || child.prepared) || child.retiring) return false;
    return heartbeat_age(child) > host_.options().heartbeat_timeout;
  }
  // Before ready, ready_timeout watches; a retiring or stopping worker may end its loop.
  if (!child.heartbeat || !child.ready || child.retiring || child.heartbeat.stopping()) return false;
  return child.heartbeat.age() > host_.options().heartbeat_timeout;
}

void Supervisor::check_heartbeats() {
  const auto grace = heartbeat_kill_grace(host_.options().heartbeat_timeout);
  for (auto& [id, child] : children_) {
    if (child->hung || !heartbeat_late(*child)) continue;
    child->hung = true;
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", static_cast<double>(heartbeat_age(*child).count()) / 1000);
    log(LogLevel::error, describe(*child), " is hung: no heartbeat for ", seconds,
        " s: SIGABRT, then SIGKILL in ", grace.count(), " ms");
    ::kill(child->info.pid, SIGABRT);
    // A stopped (SIGSTOP) or blocked process does not act on SIGABRT; SIGKILL it anyway,
    // unless its exit was seen meanwhile (then the pid is no longer ours).
    child->ready_timer->expires_after(grace);
    const NodeId worker_id = id;  // a structured binding is not capturable in clang 14
    child->ready_timer->async_wait([this, worker_id](boost::system::error_code error) {
      const auto it = children_.find(worker_id);
      if (!error && it != children_.end()) ::kill(it->second->info.pid, SIGKILL);
    });
  }
}

void Supervisor::arm_memory_check() {
  if (memory_armed_ || stopping_) return;
  if (!memory_timer_) memory_timer_ = std::make_unique<boost::asio::steady_timer>(host_.io());
  memory_armed_ = true;
  memory_timer_->expires_after(memory_check_interval);
  memory_timer_->async_wait([this](boost::system::error_code error) {
    if (error) return;
    memory_armed_ = false;
    if (stopping_) return;
    check_memory();
    if (!children_.empty()) arm_memory_check();  // as the heartbeat's: not while idle
  });
}

void Supervisor::check_memory() {
  const std::uint64_t limit = host_.options().max_rss;
  // A limit past what 64 bits of bytes can hold is never reached.
  if (limit > std::numeric_limits<std::uint64_t>::max() / mebibyte) return;
  std::vector<std::pair<NodeId, std::uint64_t>> above;
  for (const auto& [id, child] : children_) {
    // Only a serving worker not on its way out already (nor being replaced: then
    // the slot's current worker is its replacement).
    if (!child->ready || child->retiring || !child->recycle_reason.empty() ||
        slot(child->info.slot).current != id)
      continue;
    const auto resident = resident_bytes(child->info.pid);
    if (resident && *resident > limit * mebibyte) above.emplace_back(id, *resident);
  }
  // Recycling may spawn a replacement: not while walking children_.
  for (const auto& [id, resident] : above) {
    const auto it = children_.find(id);
    if (it == children_.end()) continue;
    char mib[32];
    std::snprintf(mib, sizeof mib, "%.1f", static_cast<double>(resident) / static_cast<double>(mebibyte));
    recycle(*it->second, text("has ", mib, " MiB resident, above max_rss ", limit, " MiB"));
  }
}

void Supervisor::recycle(Child& child, const std::string& why) {
  if (stopping_ || child.retiring || !child.recycle_reason.empty()) return;
  // A worker already being replaced (a rolling restart's step) is on its way out.
  if (slot(child.info.slot).current != child.info.id) return;
  child.recycle_reason = why;
  log(LogLevel::info, describe(child), " ", why,
      ": recycling it (a replacement starts; it stops once that one is ready)");
  queue_recycle(child.info.slot, child.info.id);
}

Supervisor::RollingStep* Supervisor::queued_step(unsigned index) {
  for (auto& step : rolling_queue_) {
    if (step.slot == index) return &step;
  }
  return nullptr;
}

void Supervisor::queue_recycle(unsigned index, NodeId worker) {
  RollingStep* const queued = queued_step(index);
  if (queued == nullptr) {
    rolling_queue_.push_back({index, false, worker});
  } else if (!queued->reload) {
    queued->recycle_of = worker;  // a step for a worker of the slot gone since
  }                               // else: the rolling restart's step replaces it anyway
  if (!rolling_) continue_rolling_restart();
}

void Supervisor::on_record(NodeId id, const Record& record, int fd) {
  if (fd >= 0) ::close(fd);  // workers pass no fds to the master
  const auto it = children_.find(id);
  if (it == children_.end()) return;
  if (record.type == RecordType::ready && !it->second->ready) on_ready(*it->second);
  if (record.type == RecordType::stopping) it->second->stopped_on_signal = static_cast<int>(record.value);
  if (record.type == RecordType::recycle && it->second->ready) {
    const Options& options = host_.options();
    recycle(*it->second, text("served ", record.value, " requests (max_requests ", options.max_requests,
                              options.max_requests_jitter > 0
                                  ? text(" + up to ", options.max_requests_jitter, " of jitter")
                                  : std::string(),
                              ")"));
  }
  if (record.type == RecordType::bridge_stats) {
    Child& child = *it->second;
    if (child.bridge_incoming_serial != record.peer_id) child.bridge_incoming = {};
    child.bridge_incoming_serial = record.peer_id;
    apply_bridge_stats(record, child.bridge_incoming);
  }
  if (record.type == RecordType::stats) on_stats(*it->second, record);
}

void Supervisor::on_ready(Child& child) {
  child.ready = true;
  child.ready_timer->cancel();
  child.last_watchdog = clock::now();  // a foreign worker's heartbeats are watched from now on
  log(LogLevel::info, describe(child), " is ready");
  if (!child.retiring && !child.foreign) mesh(child);
  const WorkerInfo info = child.info;
  const NodeId replaced = child.replaces;
  const bool reload_step = child.reload_step;
  host_.worker_ready(info);
  if (!started_ && std::erase(starting_slots_, info.slot) > 0 && starting_slots_.empty()) {
    started_ = true;
    host_.workers_ready();
    fill_standbys();  // once the first workers serve, not competing with their start
  }
  if (replaced != 0) {
    const auto old = children_.find(replaced);
    if (old != children_.end()) {
      if (!old->second->recycle_reason.empty()) {
        log(LogLevel::info, "worker ", replaced, " (slot ", info.slot, ") recycled: worker ", info.id,
            " serves in its place; it finishes its requests in hand and stops");
      }
      retire(*old->second);
    }
    slot(info.slot).failed_recycles = 0;
    if (reloading_ && reload_step) host_.rolling_restart_progress(++rolling_replaced_, rolling_slots_);
    continue_rolling_restart();
  }
}

void Supervisor::mesh(Child& child) {
  auto pair_up = [](int(&pair)[2]) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) return true;
    log(LogLevel::error, "cannot create a mesh stream: ", std::strerror(errno), " (raise ulimit -n)");
    return false;
  };
  for (auto& [other_id, other] : children_) {
    if (other_id == child.info.id || !other->ready || other->retiring || !other->control) continue;
    int pair[2];
    if (!pair_up(pair)) continue;
    // Each end travels to its process; the master keeps no copy, so a death is seen as EOF.
    child.control->send({RecordType::peer, other_id, other->info.slot, 0}, pair[0]);
    other->control->send({RecordType::peer, child.info.id, child.info.slot, 0}, pair[1]);
  }
  int pair[2];
  if (!pair_up(pair)) return;
  child.control->send({RecordType::peer, host_.id(), host_.slot(), 0}, pair[0]);
  host_.add_peer(pair[1], child.info.id, child.info.slot);
}

void Supervisor::retire(Child& child) {
  if (child.retiring) return;
  child.retiring = true;
  if (child.foreign) {
    signal_foreign(child, SIGTERM);
  } else {
    child.control->send({RecordType::stop, 0, 0, 0});
  }
  if (child.standby) return;  // it fills no slot
  Slot& s = slot(child.info.slot);
  if (s.current == child.info.id) s.current = 0;
}

void Supervisor::on_exit(NodeId id, int status) {
  const auto it = children_.find(id);
  if (it == children_.end()) return;
  std::unique_ptr<Child> child = std::move(it->second);
  children_.erase(it);
  if (mesh_)
    mesh_->worker_exited(id, !stopping_);  // before any replacement starts: the master role moves first
  child->ready_timer->cancel();
  if (gathering_ && status_answered()) boost::asio::post(host_.io(), [this] { finish_status(); });
  if (child->standby) return on_standby_exit(*child, status);  // it had no slot
  // Its load counts no more (a kill -9 left it there); the others look at the queue again.
  if (child->balance_entry && balance_) balance_->release(*child->balance_entry);

  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - child->started);
  const Options& options = host_.options();
  Slot& s = slot(child->info.slot);
  const bool was_current = s.current == id;
  if (was_current) s.current = 0;

  WorkerExit exit;
  exit.worker = child->info;
  exit.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  exit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

  const std::string what = text(describe(*child), " ", describe_status(status), " after ", uptime.count(),
                                " ms", child->hung ? " (it was hung)" : "");
  LogLevel level = LogLevel::warning;
  std::string message = what;
  AfterExit after = AfterExit::stop_if_nothing_serves;
  std::chrono::milliseconds delay{0};

  if (child->replaces != 0 && !child->ready) {
    // A replacement that dies before it is ready ends that step of a rolling restart:
    // the old worker keeps serving.
    const auto old = children_.find(child->replaces);
    const bool old_serves = old != children_.end() && !old->second->retiring;
    level = LogLevel::error;
    after = AfterExit::continue_rolling_restart;
    if (old_serves && !s.active) {
      // SIGTTOU removed the slot meanwhile: the old worker goes too.
      message =
          text(what, "; it was to replace worker ", child->replaces, ", which stops (its slot was removed)");
      retire(*old->second);
    } else if (old_serves) {
      s.current = child->replaces;
      message = text(what, "; it was to replace worker ", child->replaces, ", which keeps serving");
      if (!old->second->recycle_reason.empty() && !stopping_) {
        // The recycle is still due: tried again with the slot's backoff, not at once.
        const unsigned failures = ++s.failed_recycles;
        if (failures >= options.crash_loop_limit) {
          message =
              text(message, "; ", failures,
                   " replacements in a row died before ready: not recycling it "
                   "any more. Fix what makes a new worker fail at start, then send SIGHUP to the master");
        } else {
          const auto retry = restart_delay_after(options, failures);
          message = text(message, "; recycling it again in ", retry.count(), " ms");
          const unsigned index = child->info.slot;
          const NodeId worker = child->replaces;
          s.restart_timer->expires_after(retry);
          s.restart_timer->async_wait([this, index, worker](boost::system::error_code error) {
            if (error || stopping_) return;
            const auto it = children_.find(worker);
            if (it != children_.end() && !it->second->retiring && slot(index).current == worker)
              queue_recycle(index, worker);
          });
        }
      }
    } else {
      message = text(what, "; it was to replace worker ", child->replaces, ", which is gone");
    }
  } else if (stopping_ || child->retiring || !was_current) {
    // (A foreign program's default action on the SIGTERM that stopped it is to die of it.)
    const bool stopped = exit.exit_status == 0 || (child->foreign && exit.signal == SIGTERM);
    level = stopped ? LogLevel::info : LogLevel::warning;
  } else if (!options.restart_children) {
    message = text(what, "; not restarting it (restart_children is off)");
  } else {
    const bool young = !child->ready || uptime < options.min_uptime;
    s.young_deaths = young ? s.young_deaths + 1 : 0;
    if (young && s.young_deaths >= options.crash_loop_limit) {
      s.given_up = true;
      level = LogLevel::error;
      message =
          text(what, "; slot ", child->info.slot, " died young ", s.young_deaths,
               " times in a row (within min_uptime ", options.min_uptime.count(),
               " ms of starting): giving up on it (crash loop). Fix what makes the worker exit at start, "
               "then send SIGHUP to the master to try again");
    } else {
      delay = restart_delay_after(options, s.young_deaths);
      // A worker that stopped on its own SIGTERM/SIGINT was most likely signalled with
      // its whole process group, the master included: give the master's own signal a
      // moment to arrive before replacing the worker for nothing.
      if (child->stopped_on_signal != 0) delay = std::max(delay, std::chrono::milliseconds{200});
      exit.restarting = true;
      after = AfterExit::restart;
      ++s.restarts;
      if (young) {
        message =
            text(what, "; it died young (", s.young_deaths, " of ", options.crash_loop_limit,
                 " allowed in a row): restarting slot ", child->info.slot, " in ", delay.count(), " ms");
      } else if (delay.count() > 0) {
        message =
            text(what, " (it stopped on SIG", ::sigabbrev_np(child->stopped_on_signal), "); restarting slot ",
                 child->info.slot, " in ", delay.count(), " ms unless the master is stopping too");
      } else {
        message = text(what, "; restarting slot ", child->info.slot, " now");
      }
    }
  }

  report_exit(level, message, exit);

  switch (after) {
    case AfterExit::continue_rolling_restart:
      continue_rolling_restart();
      return;
    case AfterExit::stop_if_nothing_serves:
      stop_if_nothing_serves();
      return;
    case AfterExit::restart:
      break;
  }
  const unsigned index = child->info.slot;
  if (delay.count() == 0) {
    spawn(index);
    return;
  }
  s.restart_timer->expires_after(delay);
  s.restart_timer->async_wait([this, index](boost::system::error_code error) {
    if (error || stopping_) return;
    Slot& again = slot(index);
    if (again.current == 0 && !again.given_up && again.active) spawn(index);
  });
}

void Supervisor::report_exit(LogLevel level, const std::string& message, const WorkerExit& exit) {
  log(level, message);
  host_.worker_exited(exit);
}

void Supervisor::stop_if_nothing_serves() {
  if (stopping_ || host_.stopping()) return;
  const bool master_serves = host_.options().master_listen;
  if (master_serves) return;
  for (const auto& [index, s] : slots_) {
    if (!s.active) continue;
    if (s.current != 0) return;
    if (!s.given_up && host_.options().restart_children) return;  // a restart is pending
  }
  bool any_given_up = false;
  for (const auto& [index, s] : slots_) any_given_up = any_given_up || s.given_up;
  host_.begin_stop("no process is serving any more", any_given_up ? 1 : 0);
}

void Supervisor::rolling_restart(const char* cause) {
  if (stopping_) return;
  ++generation_;
  log(LogLevel::info, "rolling restart of every worker (", cause, ")");
  // The standbys run the old program: new ones take their place (and the rolling
  // steps promote them once prepared). One given up after dying young gets another try.
  for (auto& [id, child] : children_) {
    if (child->standby && child->generation != generation_) retire(*child);
  }
  standby_given_up_ = false;
  standby_young_deaths_ = 0;
  fill_standbys();
  for (auto& [index, s] : slots_) {
    // The master's own slot (there with Balancing::reuseport, for its sockets) has no worker to replace.
    if (index == host_.slot()) continue;
    if (s.given_up) {
      s.given_up = false;
      s.young_deaths = 0;
    }
    s.failed_recycles = 0;  // a recycle given up after failed replacements: this restart tries afresh
    RollingStep* const queued = queued_step(index);
    if (queued == nullptr) {
      rolling_queue_.push_back({index, true, 0});
    } else {
      queued->reload = true;  // a recycle waiting for its turn becomes this restart's step
    }
  }
  if (!reloading_) {
    reloading_ = true;
    rolling_replaced_ = 0;
    rolling_slots_ = 0;
    for (const auto& [index, s] : slots_) rolling_slots_ += s.active && index != host_.slot() ? 1 : 0;
    host_.rolling_restart_began(rolling_slots_);
  }
  if (!rolling_) continue_rolling_restart();
}

void Supervisor::continue_rolling_restart() {
  rolling_ = false;
  while (!rolling_queue_.empty() && !stopping_) {
    const RollingStep step = rolling_queue_.front();
    rolling_queue_.pop_front();
    const unsigned index = step.slot;
    const auto found = slots_.find(index);
    if (found == slots_.end() || !found->second.active) continue;
    Slot& s = found->second;
    if (!step.reload) {
      // A recycle, only while the worker that asked for it still fills the slot
      // (it may have died and been replaced meanwhile, or be stopping).
      const auto asked = children_.find(step.recycle_of);
      if (s.current != step.recycle_of || asked == children_.end() || asked->second->retiring) continue;
    }
    const NodeId old = s.current;
    s.restart_timer->cancel();
    spawn(index);  // becomes the slot's current worker
    if (s.current != old) {
      const auto it = children_.find(s.current);
      if (it != children_.end()) it->second->reload_step = step.reload;
    }
    if (old != 0 && s.current != old) {  // (a spawn that failed leaves the old worker current)
      const auto it = children_.find(s.current);
      if (it != children_.end()) it->second->replaces = old;
      rolling_ = true;
      return;  // the next slot follows when this replacement is ready
    }
  }
  if (rolling_queue_.empty() && !rolling_ && reloading_ && !stopping_) {
    reloading_ = false;
    log(LogLevel::debug, "rolling restart done");
    host_.rolling_restart_done();
  }
}

unsigned Supervisor::serving_workers() const noexcept {
  unsigned count = 0;
  for (const auto& [id, child] : children_) count += child->ready && !child->retiring ? 1 : 0;
  return count;
}

bool Supervisor::worker_healthy(const Child& child, clock::time_point now) const {
  if (child.retiring) return true;  // on its way out: its health no longer matters
  if (!child.ready && !child.prepared && now - child.started > host_.options().ready_timeout) return false;
  return !heartbeat_late(child);  // a ready worker whose loop is stuck is not
}

bool Supervisor::healthy() const {
  for (const auto& [index, s] : slots_) {
    if (s.active && s.given_up) return false;
  }
  const auto now = clock::now();
  for (const auto& [id, child] : children_) {
    if (!worker_healthy(*child, now)) return false;
  }
  return true;
}

bool Supervisor::add_worker(const char* cause) {
  if (stopping_) return false;
  unsigned index = 1;
  for (auto it = slots_.find(index); it != slots_.end() && it->second.active; it = slots_.find(++index)) {
  }
  log(LogLevel::info, "adding a worker in slot ", index, " (", cause, ")");
  try {
    sockets_for(index);
  } catch (const std::system_error& e) {
    log(LogLevel::error, "cannot add a worker: ", e.what());
    return false;
  }
  slot(index).active = true;
  spawn(index);
  return true;
}

void Supervisor::remove_worker() {
  if (stopping_) return;
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (it->first == host_.slot() || !it->second.active || it->second.current == 0) continue;
    remove_slot(it->first, "SIGTTOU");
    return;
  }
  log(LogLevel::warning, "SIGTTOU: no worker left to remove");
}

void Supervisor::remove_slot(unsigned index, const char* cause) {
  Slot& s = slot(index);
  s.active = false;
  if (s.restart_timer) s.restart_timer->cancel();
  std::erase_if(rolling_queue_, [index](const RollingStep& step) { return step.slot == index; });
  // Every worker of the slot: the current one, and one that replaces it in a rolling
  // restart or a recycle. Each drains; none is replaced.
  for (auto& [id, child] : children_) {
    if (child->info.slot != index || child->retiring) continue;
    log(LogLevel::info, "removing worker ", id, " from slot ", index, " (", cause, ")");
    retire(*child);
  }
}

void Supervisor::stop_all() {
  stopping_ = true;
  reloading_ = false;
  rolling_queue_.clear();
  for (auto& [index, s] : slots_) {
    if (s.restart_timer) s.restart_timer->cancel();
  }
  if (heartbeat_timer_) heartbeat_timer_->cancel();
  if (memory_timer_) memory_timer_->cancel();
  if (mesh_) mesh_->stop_accepting();
  for (auto& [id, child] : children_) {
    if (!child->hung) child->ready_timer->cancel();  // a hung one's SIGKILL stays on the way
    child->retiring = true;
    if (child->foreign) {
      signal_foreign(*child, SIGTERM);
    } else {
      child->control->send({RecordType::stop, 0, 0, 0});
    }
  }
}

void Supervisor::kill_all_and_reap() {
  for (auto& [id, child] : children_) {
    log(LogLevel::warning, "worker ", id, " (pid ", child->info.pid, ") is still running: killing it");
    ::kill(child->info.pid, SIGKILL);
    if (child->foreign) signal_foreign(*child, SIGKILL);
  }
  for (auto& [id, child] : children_) {
    while (::waitpid(child->info.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  children_.clear();
  if (!program_path_.empty()) reap_orphans();
}

// --- warm standbys (Options::standby, docs/cli.md "Standby workers") ---

std::string Supervisor::describe(const Child& child) {
  if (child.standby) return text("standby ", child.info.id, " (pid ", child.info.pid, ")");
  return text("worker ", child.info.id, " (slot ", child.info.slot, ", pid ", child.info.pid, ")");
}

void Supervisor::fill_standbys() {
  const unsigned wanted = host_.options().standby;
  if (wanted == 0 || program_path_.empty() || stopping_ || standby_given_up_ || host_.stopping()) return;
  unsigned alive = 0;
  for (const auto& [id, child] : children_) alive += child->standby && !child->retiring ? 1 : 0;
  for (; alive < wanted; ++alive) spawn_foreign(0, true);
}

void Supervisor::on_prepared(Child& child) {
  child.prepared = true;
  child.ready_timer->cancel();
  child.last_watchdog = clock::now();  // its heartbeats are watched from now on, as a worker's
  log(LogLevel::info, describe(child), " waits, prepared: it fills the next slot to be filled");
}

bool Supervisor::promote_standby(unsigned index) {
  Child* chosen = nullptr;
  for (auto& [id, child] : children_) {  // the oldest (lowest id) first
    if (child->standby && child->prepared && !child->retiring && !child->hung &&
        child->generation == generation_) {
      chosen = child.get();
      break;
    }
  }
  if (chosen == nullptr) return false;
  Child& child = *chosen;
  child.standby = false;
  child.info.slot = index;
  child.started = clock::now();  // min_uptime counts from here: its life as a worker
  slot(index).current = child.info.id;
  const MeshBroker::Promotion promotion =
      mesh_ ? mesh_->promote(child.info.id, index) : MeshBroker::Promotion{};
  if (!promotion.told) ::kill(child.info.pid, SIGUSR2);
  log(LogLevel::info, "standby ", child.info.id, " (pid ", child.info.pid, ") fills slot ", index,
      promotion.told ? " (promote record)" : " (SIGUSR2)", promotion.master ? ", with the master role" : "");
  if (host_.options().max_rss > 0) arm_memory_check();
  host_.worker_started(child.info);
  // Ready at once: it said so as a standby. Posted, so that the caller may first say
  // which worker it replaces (a rolling step retires that one once this is ready).
  const NodeId id = child.info.id;
  boost::asio::post(host_.io(), [this, id] {
    const auto it = children_.find(id);
    if (it != children_.end() && !it->second->ready && !it->second->retiring) on_ready(*it->second);
  });
  // The next standby starts a moment later: a program's start (Node.js: ~70 ms of a
  // CPU) would otherwise compete with the promoted one's first accepts.
  arm_standby_start(standby_refill_delay);
  return true;
}

void Supervisor::arm_standby_start(std::chrono::milliseconds delay) {
  if (!standby_timer_) standby_timer_ = std::make_unique<boost::asio::steady_timer>(host_.io());
  standby_timer_->expires_after(delay);
  standby_timer_->async_wait([this](boost::system::error_code error) {
    if (!error) fill_standbys();
  });
}

void Supervisor::on_standby_exit(const Child& child, int status) {
  const Options& options = host_.options();
  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - child.started);
  const std::string what = text(describe(child), " ", describe_status(status), " after ", uptime.count(),
                                " ms", child.hung ? " (it was hung)" : "");
  if (stopping_ || child.retiring) {
    log(LogLevel::info, what);
    return;
  }
  const bool young = !child.prepared || uptime < options.min_uptime;
  standby_young_deaths_ = young ? standby_young_deaths_ + 1 : 0;
  if (young && standby_young_deaths_ >= options.crash_loop_limit) {
    standby_given_up_ = true;
    log(LogLevel::error, what, "; standbys died young ", standby_young_deaths_,
        " times in a row: keeping none any more (a dead worker's slot gets a new start instead). Check that "
        "the "
        "program supports MULTINODE_STANDBY (docs/cli.md, \"Standby workers\"), then send SIGHUP to try "
        "again");
    return;
  }
  const auto delay = restart_delay_after(options, young ? standby_young_deaths_ : 0);
  log(LogLevel::warning, what, "; starting another standby in ", delay.count(), " ms");
  arm_standby_start(delay);
}

}  // namespace multinode::detail

namespace multinode::detail {

unsigned Supervisor::worker_slots() const {
  unsigned count = 0;
  for (const auto& [index, s] : slots_) count += s.active && index != host_.slot() ? 1 : 0;
  return count;
}

std::string Supervisor::scale(unsigned workers) {
  if (stopping_) return "error: the master is stopping: nothing to scale\n";
  const bool master_serves = host_.options().master_listen;
  if (workers == 0 && !master_serves) {
    return "error: scale 0 would leave nothing serving (master_listen is off, so the master does not serve): "
           "send stop instead\n";
  }
  const unsigned before = worker_slots();
  log(LogLevel::info, "scaling from ", before, " to ", workers, " worker(s) (control socket)");
  while (worker_slots() < workers) {
    if (!add_worker("scale")) {
      return "error: could add only " + std::to_string(worker_slots() - before) + " of " +
             std::to_string(workers - before) + " workers; the master's log says why\n";
    }
  }
  // Retired from the highest slot down, as SIGTTOU does.
  for (auto it = slots_.rbegin(); it != slots_.rend() && worker_slots() > workers; ++it) {
    if (it->first == host_.slot() || !it->second.active) continue;
    remove_slot(it->first, "scale");
  }
  std::string reply = "ok: " + std::to_string(workers) + (workers == 1 ? " worker" : " workers") + " (was " +
                      std::to_string(before) + ")";
  if (master_serves) reply += " and the master: " + std::to_string(workers + 1) + " serving processes";
  return reply + "\n";
}

void Supervisor::collect_status(std::chrono::milliseconds deadline,
                                std::function<void(const StatusSnapshot&)> done) {
  status_waiters_.push_back(std::move(done));
  if (gathering_) return;
  gathering_ = true;
  ++stats_serial_;
  for (auto& [id, child] : children_) {
    if (child->control) child->control->send({RecordType::stats_request, 0, 0, stats_serial_});
  }
  if (!stats_timer_) stats_timer_ = std::make_unique<boost::asio::steady_timer>(host_.io());
  stats_timer_->expires_after(deadline);
  stats_timer_->async_wait([this](boost::system::error_code error) {
    if (!error && gathering_) finish_status();
  });
  if (status_answered()) boost::asio::post(host_.io(), [this] { finish_status(); });
}

void Supervisor::on_stats(Child& child, const Record& record) {
  child.counters = ServerCounters{record.peer_slot, record.value};
  child.stats_answered = record.peer_id;
  // The bridge_stats records of this answer came before it, on the same channel.
  if (child.bridge_incoming_serial == record.peer_id) child.bridge = child.bridge_incoming;
  child.bridge_incoming_serial.reset();
  if (gathering_ && record.peer_id == stats_serial_ && status_answered()) finish_status();
}

bool Supervisor::status_answered() const {
  for (const auto& [id, child] : children_) {
    // Only ready workers are waited for: one still starting may not have reached
    // listen() (its answer comes later), and one that is told to stop, or stops,
    // has closed its end or soon will. The others show the figures they last sent.
    const bool can_answer = child->ready && child->control && child->control->is_open() && !child->retiring &&
                            child->stopped_on_signal == 0 &&
                            !(child->heartbeat && child->heartbeat.stopping());
    if (can_answer && child->stats_answered != stats_serial_) return false;
  }
  return true;
}

void Supervisor::finish_status() {
  if (!gathering_) return;
  gathering_ = false;
  stats_timer_->cancel();
  const StatusSnapshot status = snapshot();
  auto waiters = std::move(status_waiters_);
  status_waiters_.clear();
  for (auto& done : waiters) done(status);
}

StatusSnapshot Supervisor::snapshot() const {
  const auto now = clock::now();
  const auto seconds = [now](clock::time_point since) {
    return std::chrono::duration<double>(now - since).count();
  };
  StatusSnapshot status;
  status.master = {::getpid(), seconds(started_at_), generation_, host_.master_counters()};
  if (host_.options().standby > 0) status.standby.emplace();
  for (const auto& [id, child] : children_) {
    if (child->standby) {  // (only with Options::standby: status.standby is there)
      const char* state = stopping_ || child->retiring ? "stopping"
                          : child->prepared            ? "waiting"
                                                       : "starting";
      status.standby->push_back(
          {id, child->info.pid, state, seconds(child->started), resident_bytes(child->info.pid)});
      continue;
    }
    WorkerStatus w;
    w.id = id;
    w.slot = child->info.slot;
    w.pid = child->info.pid;
    if (stopping_ || child->stopped_on_signal != 0) {
      w.state = "stopping";
    } else if (child->retiring) {
      w.state = "draining";
    } else {
      w.state = child->ready ? "ready" : "starting";
    }
    w.uptime_s = seconds(child->started);
    const auto s = slots_.find(child->info.slot);
    w.restarts = s == slots_.end() ? 0 : s->second.restarts;
    w.rss_bytes = resident_bytes(child->info.pid);
    if ((child->heartbeat && !child->heartbeat.stopping()) ||
        (child->foreign && child->watchdog && child->ready)) {
      w.heartbeat_age_ms = static_cast<std::uint64_t>(heartbeat_age(*child).count());
    }
    w.counters = child->counters;
    w.bridge = child->bridge;
    if (mesh_) w.master_role = mesh_->master() == id;
    status.workers.push_back(w);
  }
  std::sort(status.workers.begin(), status.workers.end(), [](const WorkerStatus& a, const WorkerStatus& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.id < b.id;
  });
  return status;
}

}  // namespace multinode::detail

// The supervisor's foreign workers (Options::worker_command, docs/cli.md): how
// one is started, what its NOTIFY_SOCKET datagrams do, how it is signalled. The
// rest of their life (backoff, rolling restart, recycling by max_rss, status) is
// the library workers' path in supervisor.cpp.
#include "supervisor/supervisor.hpp"

#include "supervisor/foreign.hpp"

#include "common/environment.hpp"
#include "common/log.hpp"

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace multinode::detail {
namespace {

using clock = std::chrono::steady_clock;

// Room for any pid in LISTEN_PID= and WATCHDOG_PID=, written by the child.
constexpr std::size_t pid_room = 23;
constexpr std::size_t max_notify_datagram = 4096;  // systemd's own bound is about this

// Everything the child needs between fork() and execve(), made before fork().
struct ForeignPlan {
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* path = nullptr;
  std::vector<int> fds;      // become fds 3, 4, ...
  std::vector<int> scratch;  // their copies above every fd in use
  int scratch_base = 0;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  int exec_report = -1;  // close-on-exec: the errno of a failed execve, or nothing
  char* listen_pid = nullptr;
  char* watchdog_pid = nullptr;
  pid_t master_pid = 0;
};

[[noreturn]] void exec_foreign(ForeignPlan& plan) {
  // Its own process group, so that a stop reaches what it forks too (and a Ctrl-C
  // on the terminal reaches the master only, which stops it gracefully).
  ::setpgid(0, 0);
  // The master's ignored or handled signals are not the program's.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int number = 1; number < NSIG; ++number) ::sigaction(number, &default_action, nullptr);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // A master that dies, even by SIGKILL, takes its workers with it (SIGKILL: a
  // foreign program may ignore SIGTERM). It survives the program's setsid().
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != plan.master_pid) ::_exit(70);
  const int count = static_cast<int>(plan.fds.size());
  const int report = ::fcntl(plan.exec_report, F_DUPFD_CLOEXEC, plan.scratch_base);
  if (report < 0) ::_exit(71);
  for (int i = 0; i < count; ++i) {
    plan.scratch[i] = ::fcntl(plan.fds[i], F_DUPFD, plan.scratch_base);
    if (plan.scratch[i] < 0) ::_exit(71);
  }
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 || ::dup2(plan.stderr_fd, 2) < 0)
    ::_exit(71);
  for (int i = 0; i < count; ++i) {
    if (::dup2(plan.scratch[i], 3 + i) < 0) ::_exit(71);
  }
  const int report_fd = ::dup3(report, 3 + count, O_CLOEXEC);
  if (report_fd < 0) ::_exit(71);
  // Nothing else crosses exec: not the master's sockets, pipes or clients.
  if (::close_range(4 + count, ~0U, 0) != 0) {
    for (int fd = 4 + count; fd < plan.scratch_base + count + 1024; ++fd) ::close(fd);
  }
  const pid_t self = ::getpid();
  environment::write_listen_pid(plan.listen_pid, self);
  if (plan.watchdog_pid != nullptr) environment::write_listen_pid(plan.watchdog_pid, self);
  ::execve(plan.path, plan.argv.data(), plan.envp.data());
  const int error = errno;
  while (::write(report_fd, &error, sizeof error) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

bool names_one_of(const std::string& entry, std::initializer_list<std::string_view> names) {
  return std::any_of(names.begin(), names.end(), [&entry](std::string_view name) {
    return entry.size() > name.size() && entry[name.size()] == '=' &&
           entry.compare(0, name.size(), name) == 0;
  });
}

void close_all(std::initializer_list<int> fds) {
  for (const int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace

void Supervisor::reap_orphans() {
  // The master is the subreaper of its foreign workers' trees (constructor): what a
  // worker forked and left behind, even in a session of its own (setsid), is the
  // master's child once the worker is gone. Not a worker: killed and reaped, as
  // systemd's KillMode=control-group does, without the cgroup.
  for (int round = 0; round < 16; ++round) {
    std::vector<pid_t> orphans;
    for (const auto& entry : std::filesystem::directory_iterator(
             "/proc/self/task", std::filesystem::directory_options::skip_permission_denied)) {
      std::ifstream in(entry.path() / "children");
      for (pid_t pid = 0; in >> pid;) {
        const bool worker = std::any_of(children_.begin(), children_.end(),
                                        [pid](const auto& child) { return child.second->info.pid == pid; });
        if (!worker) orphans.push_back(pid);
      }
    }
    if (orphans.empty()) return;
    for (const pid_t pid : orphans) {
      log(LogLevel::info, "killing pid ", pid, ", left behind by a worker that ended");
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
}

void Supervisor::signal_foreign(const Child& child, int signal_number) {
  ::kill(child.info.pid, signal_number);  // also when it left its group with setsid()
  ::kill(-child.info.pid, signal_number);
}

std::chrono::milliseconds Supervisor::heartbeat_age(const Child& child) const {
  if (!child.foreign) return child.heartbeat.age();
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - child.last_watchdog);
}

void Supervisor::spawn_foreign(unsigned index, bool standby) {
  const Options& options = host_.options();
  const NodeId id = next_id_++;
  const std::string what = standby ? std::string("a standby") : "a worker for slot " + std::to_string(index);
  // A standby holds the shared sockets (Options::standby is refused with reuseport).
  const auto& sockets = standby ? shared_ : sockets_for(index);

  // Its NOTIFY_SOCKET: a datagram socket of its own in the abstract namespace, so
  // that whatever process of the worker sends counts for it (NotifyAccess=all);
  // only senders of the master's own user are heard (credentials checked).
  const int notify_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const std::string notify_name = "multinode-notify/" + std::to_string(::getpid()) + "/" + std::to_string(id);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path + 1, notify_name.data(), notify_name.size());
  const int on = 1;
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (notify_fd < 0 || ::setsockopt(notify_fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0 ||
      ::bind(notify_fd, reinterpret_cast<const sockaddr*>(&address),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + notify_name.size())) != 0 ||
      ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0 ||
      devnull < 0) {
    log(LogLevel::error, "cannot start ", what, ": ", std::strerror(errno),
        " (raise the open-files limit, ulimit -n)");
    close_all({notify_fd, out[0], out[1], err[0], err[1], report[0], report[1], devnull});
    return;
  }

  // The environment: the master's, less what names multinode or the service
  // manager, then systemd's protocols and the worker's identity.
  namespace variable = environment;
  const auto assign = [](const char* name, const std::string& value) {
    return std::string(name) + "=" + value;
  };
  std::vector<std::string> env;
  for (const auto& entry : base_env_) {
    if (names_one_of(entry, {variable::run_id, variable::run_nodes, variable::mesh, variable::mesh_master,
                             variable::standby}))
      continue;
    // --bridge's (below) in place of any inherited; without it, the operator's pass.
    if (!options.bridge.empty() && names_one_of(entry, {variable::bridge_url, variable::bridge_prefix}))
      continue;
    env.push_back(entry);
  }
  // LISTEN_FDNAMES: one name per socket, Options::listen's NAME or "multinode".
  std::string names;
  for (std::size_t i = 0; i < sockets.size(); ++i)
    names += (i == 0 ? "" : ":") + (sockets[i].label.empty() ? std::string("multinode") : sockets[i].label);
  env.push_back(assign(variable::listen_fds, std::to_string(sockets.size())));
  env.push_back(assign(variable::listen_fdnames, names));
  env.push_back(assign(variable::notify_socket, "@" + notify_name));
  env.push_back(assign(variable::run_id, std::to_string(id)));
  // A standby learns its slot when it is promoted (docs/cli.md, "Standby workers").
  if (standby) {
    env.push_back(assign(variable::standby, "1"));
  } else {
    env.push_back(assign(variable::slot, std::to_string(index)));
  }
  env.push_back(assign(variable::run_nodes, std::to_string(options.nodes)));
  // The mesh (docs/protocol.md): where to join, and the master role for one worker.
  bool master_role = false;
  if (mesh_ && standby) {
    mesh_->expect_standby(id);
  } else if (mesh_) {
    master_role = mesh_->expect(id, index);
  }
  if (mesh_) env.push_back(assign(variable::mesh, mesh_->directory()));
  if (master_role) env.push_back(assign(variable::mesh_master, "1"));
  if (!options.bridge.empty()) {  // for workers that link to Redis themselves (docs/bridge.md)
    env.push_back(assign(variable::bridge_url, options.bridge));
    env.push_back(assign(variable::bridge_prefix, options.bridge_prefix));
  }
  const bool watchdog = options.heartbeat_timeout.count() > 0;
  if (watchdog) {
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(options.heartbeat_timeout);
    env.push_back(assign(variable::watchdog_usec, std::to_string(usec.count())));
    env.push_back(assign(variable::watchdog_pid, std::string(pid_room, ' ')));
  }
  env.push_back(assign(variable::listen_pid, std::string(pid_room, ' ')));

  std::uint16_t port = 0;
  if (!sockets.empty()) port = local_port(sockets.front().fd);
  // ({slot} with standbys is refused by Runtime::start: a standby has none yet.)
  std::vector<std::string> argv = substitute_placeholders(
      options.worker_command,
      {"3", std::to_string(port), std::to_string(id), standby ? std::string() : std::to_string(index)});

  ForeignPlan plan;
  plan.path = program_path_.c_str();
  for (auto& a : argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.listen_pid = env.back().data() + std::strlen(variable::listen_pid) + 1;
  if (watchdog) plan.watchdog_pid = env[env.size() - 2].data() + std::strlen(variable::watchdog_pid) + 1;
  int highest = std::max({notify_fd, out[1], err[1], report[1], devnull});
  for (const auto& socket : sockets) {
    plan.fds.push_back(socket.fd);
    highest = std::max(highest, socket.fd);
  }
  plan.scratch.resize(plan.fds.size());
  plan.scratch_base = std::max(highest, 4 + static_cast<int>(plan.fds.size())) + 1;
  plan.stdin_fd = devnull;
  plan.stdout_fd = out[1];
  plan.stderr_fd = err[1];
  plan.exec_report = report[1];
  plan.master_pid = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) exec_foreign(plan);
  close_all({out[1], err[1], report[1], devnull});
  if (pid < 0) {
    log(LogLevel::error, "cannot start ", what, ": fork failed: ", std::strerror(errno));
    close_all({notify_fd, out[0], err[0], report[0]});
    if (mesh_) mesh_->worker_exited(id, !stopping_);
    return;
  }
  // The child's setpgid() too, so that a signal to the group cannot miss it in between.
  ::setpgid(pid, pid);
  // Until execve: its end of the report pipe closes on success, or carries errno.
  int exec_error = 0;
  ssize_t got = 0;
  while ((got = ::read(report[0], &exec_error, sizeof exec_error)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  const bool executed = got == 0;

  auto child = std::make_unique<Child>();
  child->info = WorkerInfo{id, index, pid};
  child->started = clock::now();
  child->foreign = true;
  child->watchdog = watchdog;
  child->standby = standby;
  child->generation = generation_;
  if (!executed) {
    log(LogLevel::error, describe(*child), ": cannot execute ", program_path_, ": ",
        std::strerror(exec_error), " (check that it is an executable program for this machine)");
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    log(LogLevel::error, "pidfd_open failed for pid ", pid, ": ", std::strerror(errno),
        " (Linux 5.3 or newer is needed)");
    signal_foreign(*child, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    close_all({notify_fd, out[0], err[0]});
    if (mesh_) mesh_->worker_exited(id, !stopping_);
    return;
  }
  child->pidfd = std::make_unique<boost::asio::posix::stream_descriptor>(host_.io(), pidfd);
  child->ready_timer = std::make_unique<boost::asio::steady_timer>(host_.io());
  child->notify = std::make_unique<boost::asio::posix::stream_descriptor>(host_.io(), notify_fd);
  if (!standby) slot(index).current = id;

  if (!output_) output_ = std::make_shared<OutputSink>(options.worker_output_buffer);
  const RelayFormat format{options.log_format == LogFormat::json, options.worker_max_line};
  relay_output(host_.io(), out[0], false, child->info, format, output_);
  relay_output(host_.io(), err[0], true, child->info, format, output_);

  child->pidfd->async_wait(boost::asio::posix::descriptor_base::wait_read,
                           [this, id, pid](boost::system::error_code error) {
                             if (error == boost::asio::error::operation_aborted) return;
                             // What it left behind in its group goes with it (the pid
                             // is still a zombie here, so the group id is not reused).
                             ::kill(-pid, SIGKILL);
                             int status = 0;
                             while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                             }
                             reap_orphans();
                             on_exit(id, status);
                           });
  child->ready_timer->expires_after(options.ready_timeout);
  child->ready_timer->async_wait([this, id](boost::system::error_code error) {
    if (error) return;
    const auto it = children_.find(id);
    if (it == children_.end() || it->second->ready || it->second->prepared) return;
    if (it->second->standby) {
      log(LogLevel::warning, describe(*it->second), " did not say it waits within ",
          host_.options().ready_timeout.count(),
          " ms (READY=1 on NOTIFY_SOCKET, or a ready record after its standby record): killing it. "
          "A program run with --standby must support MULTINODE_STANDBY (docs/cli.md, \"Standby workers\")");
    } else {
      log(LogLevel::warning, describe(*it->second), " did not send READY=1 on NOTIFY_SOCKET within ",
          host_.options().ready_timeout.count(),
          " ms (--ready notify): killing it. Use --ready started for a program that does not notify");
    }
    signal_foreign(*it->second, SIGKILL);
  });

  const WorkerInfo info = child->info;
  children_.emplace(id, std::move(child));
  read_notify(id);
  if (watchdog) arm_heartbeat_check();
  if (standby) {
    log(LogLevel::debug, "started standby ", id, " (pid ", pid, "): ", program_path_);
    return;  // a worker for the host once promoted
  }
  log(LogLevel::debug, "started worker ", id, " (slot ", index, ", pid ", pid, "): ", program_path_);
  if (options.max_rss > 0) arm_memory_check();
  host_.worker_started(info);
  if (executed && options.worker_readiness == WorkerReadiness::started) {
    boost::asio::post(host_.io(), [this, id] {
      const auto it = children_.find(id);
      if (it != children_.end() && !it->second->ready && !it->second->retiring) on_ready(*it->second);
    });
  }
}

void Supervisor::read_notify(NodeId id) {
  const auto it = children_.find(id);
  if (it == children_.end()) return;
  it->second->notify->async_wait(
      boost::asio::posix::descriptor_base::wait_read, [this, id](boost::system::error_code error) {
        if (error) return;
        const auto found = children_.find(id);
        if (found == children_.end()) return;
        const int fd = found->second->notify->native_handle();
        std::array<char, max_notify_datagram> data{};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        // A bounded number per turn: a worker that floods its socket waits for the next.
        for (int i = 0; i < 64; ++i) {
          iovec io{data.data(), data.size()};
          msghdr message{};
          message.msg_iov = &io;
          message.msg_iovlen = 1;
          message.msg_control = control;
          message.msg_controllen = sizeof control;
          const ssize_t size = ::recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
          if (size < 0) break;
          bool trusted = false;
          for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
              // Passed fds (FDSTORE=1) are not kept: closed so that they do not leak.
              const auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
              for (std::size_t k = 0; k < count; ++k) {
                int passed = -1;
                std::memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
                ::close(passed);
              }
            }
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
              ucred credentials{};
              std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
              trusted = credentials.uid == ::geteuid() || credentials.uid == 0;
            }
          }
          if (!trusted || (message.msg_flags & MSG_TRUNC) != 0) continue;
          on_notice(id, parse_notify(std::string_view(data.data(), static_cast<std::size_t>(size))));
          if (children_.find(id) == children_.end()) return;
        }
        read_notify(id);
      });
}

void Supervisor::on_notice(NodeId id, const NotifyMessage& notice) {
  const auto it = children_.find(id);
  if (it == children_.end()) return;
  Child& child = *it->second;
  if (notice.watchdog) child.last_watchdog = clock::now();
  if (notice.status) log(LogLevel::debug, "worker ", id, " status: ", *notice.status);
  if (notice.ready && child.standby) {
    if (!child.prepared && !child.retiring) on_prepared(child);
  } else if (notice.ready && !child.ready && host_.options().worker_readiness == WorkerReadiness::notify) {
    on_ready(child);
  }
}

}  // namespace multinode::detail

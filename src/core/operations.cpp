// The master's operator interface (docs/operations.md): the control socket
// (Options::control_socket) and GET /metrics (Options::metrics_listen). Binding
// happens in start_master() before the privilege drop; every command is a thin
// layer over what the signals do (HUP, TTIN/TTOU, TERM) and the supervisor's status.
#include "core/runtime.hpp"

#include "common/log.hpp"
#include "control/command.hpp"
#include "supervisor/status.hpp"

#include <boost/asio/post.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace multinode::detail {
namespace {

[[noreturn]] void fail(int code, const std::string& what) {
  throw std::system_error(code, std::generic_category(), what);
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    fail(ENAMETOOLONG, "control_socket '" + path + "' is longer than " +
                           std::to_string(sizeof address.sun_path - 1) + " bytes: use a shorter path");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

// A socket file left at path: replaced when no process answers on it (a master
// that died), refused when one does (a running master) or when it is not a socket.
void clear_stale_socket(const std::string& path, const sockaddr_un& address) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    fail(EEXIST, "control_socket " + path + " exists and is not a socket: remove it or choose another path");
  }
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) fail(errno, "cannot create a socket to probe the control socket " + path);
  const int connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int code = errno;
  ::close(probe);
  if (connected == 0 || code == EAGAIN) {
    fail(EADDRINUSE, "control_socket " + path +
                         " is in use: another master answers on it; stop that one, or choose another path");
  }
  if (code != ECONNREFUSED) {
    fail(code, "cannot probe the control socket " + path + " left there: " + std::strerror(code) +
                   " (remove it, or choose another path)");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    fail(errno, "cannot remove the stale control socket " + path + ": " + std::strerror(errno) +
                    " (remove it by hand, or choose another path)");
  }
}

int bind_control_socket(const std::string& path) {
  const sockaddr_un address = unix_address(path);
  clear_stale_socket(path, address);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail(errno, "cannot create the control socket " + path);
  // Mode 0600 from the start (the umask decides a socket file's mode at bind), so
  // no other user can connect between bind() and the chmod() that makes it certain.
  const mode_t umask_before = ::umask(0177);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int code = errno;
  ::umask(umask_before);
  if (bound != 0) {
    ::close(fd);
    fail(code, "cannot bind the control socket " + path + ": " + std::strerror(code) +
                   " (its directory must exist and be writable)");
  }
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 128) != 0) {
    const int error = errno;
    ::close(fd);
    ::unlink(path.c_str());
    fail(error, "cannot set up the control socket " + path + ": " + std::strerror(error));
  }
  return fd;
}

}  // namespace

void Runtime::start_operator_interface(const std::optional<Identity>& identity) {
  if (options_.control_socket.empty() && options_.metrics_listen.empty()) return;
  if (options_.control_timeout.count() <= 0 || options_.control_max_clients == 0) {
    fail(EINVAL, "control_timeout and control_max_clients must be above 0");
  }
  control_server_ = std::make_unique<ControlServer>(
      io_, ControlServer::Limits{options_.control_timeout, options_.control_max_clients},
      [this](const Command& command, ControlServer::Reply reply) {
        operator_command(command, std::move(reply));
      });
  if (!options_.metrics_listen.empty()) {
    const auto where = split_host_port(options_.metrics_listen);
    if (!where) {
      fail(EINVAL, "metrics_listen '" + options_.metrics_listen +
                       "' is not HOST:PORT: write e.g. 127.0.0.1:9100, [::1]:9100 or :9100 (every address)");
    }
    Options bind_options;
    bind_options.host = where->host;
    bind_options.backlog = 128;
    std::string names;
    for (const auto& socket : bind_listeners(bind_options, where->port, false)) {
      control_server_->serve_metrics(socket.fd);
      names += (names.empty() ? "" : ", ") + socket.name;
    }
    log(LogLevel::info, "serving GET /metrics on ", names);
  }
  if (options_.control_socket.empty()) return;
  const std::string& path = options_.control_socket;
  const int fd = bind_control_socket(path);
  control_path_ = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    control_device_ = st.st_dev;
    control_inode_ = st.st_ino;
  }
  control_server_->serve_commands(fd);
  // Owned by the user the master becomes, as the log file is (docs/architecture.md, "Privileges").
  if (identity && ::geteuid() == 0 && ::chown(path.c_str(), identity->uid, identity->gid) != 0) {
    fail(errno, "chown of the control socket " + path + " to " + identity->user + ":" + identity->group +
                    " failed: " + std::strerror(errno));
  }
  log(LogLevel::info, "control socket at ", path);
}

void Runtime::stop_operator_interface() {
  if (!control_server_) return;
  control_server_->stop();
  remove_control_socket();
}

void Runtime::remove_control_socket() noexcept {
  if (control_path_.empty()) return;
  const std::string path = std::move(control_path_);
  control_path_.clear();
  struct stat st {};
  // Only the file this master bound: not one a later master put at the same path.
  if (::lstat(path.c_str(), &st) != 0 || st.st_dev != control_device_ || st.st_ino != control_inode_) return;
  if (::unlink(path.c_str()) != 0) {
    log(LogLevel::warning, "cannot remove the control socket ", path, ": ", std::strerror(errno),
        " (the next start replaces it; let the user the master runs as write its directory to avoid this)");
  }
}

void Runtime::operator_command(const Command& command, ControlServer::Reply reply) {
  switch (command.kind) {
    case CommandKind::status:
    case CommandKind::metrics: {
      // Half the client's time at most, so the reply still fits in it; 1 s is long
      // enough for any worker whose loop runs.
      const auto deadline = std::min(std::chrono::milliseconds{1000}, options_.control_timeout / 2);
      const bool json = command.kind == CommandKind::status;
      supervisor_->collect_status(deadline, [this, json, reply](const StatusSnapshot& collected) {
        StatusSnapshot status = collected;
        if (bridge_) status.bridge = bridge_->counters();
        reply(json ? status_json(status) : status_prometheus(status));
      });
      return;
    }
    case CommandKind::reload: {
      if (stopping_) return reply("error: the master is stopping: nothing to reload\n");
      supervisor_->rolling_restart("control socket");
      const unsigned slots = supervisor_->worker_slots();
      return reply("ok: rolling restart of " + std::to_string(slots) + (slots == 1 ? " worker" : " workers") +
                   " begun: each old worker stops once its replacement is ready\n");
    }
    case CommandKind::scale:
      return reply(supervisor_->scale(command.workers));
    case CommandKind::stop:
      if (stopping_) return reply("ok: already stopping\n");
      reply("ok: stopping gracefully\n");
      // After the reply is on its way: the stop closes the control socket, not a reply being written.
      boost::asio::post(io_, [this] { begin_stop("stop on the control socket", 0); });
      return;
  }
}

std::optional<ServerCounters> Runtime::master_counters() const {
  if (!is_master_ || !options_.master_listen) return std::nullopt;
  return server_ != nullptr ? server_->counters() : ServerCounters{};
}

ServerCounters Runtime::server_counters() const noexcept {
  return server_ != nullptr ? server_->counters() : ServerCounters{};
}

std::optional<BridgeCounters> Runtime::bridge_counters() const {
  if (!bridge_) return std::nullopt;
  return bridge_->counters();
}

}  // namespace multinode::detail

// systemd's notification protocol, without libsystemd (sd_notify.hpp).
#include "common/sd_notify.hpp"

#include "common/environment.hpp"
#include "common/log.hpp"

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <utility>

extern char** environ;

namespace multinode::detail {
namespace {

void append_status(std::string& message, std::string_view status) {
  if (status.empty()) return;
  message += "\nSTATUS=";
  for (const char c : status) message += c == '\n' ? ' ' : c;
}

}  // namespace

std::optional<NotifyAddress> parse_notify_socket(const char* value) noexcept {
  if (value == nullptr) return std::nullopt;
  const std::string_view text(value);
  if (text.size() < 2 || (text[0] != '/' && text[0] != '@')) return std::nullopt;
  NotifyAddress out;
  out.address.sun_family = AF_UNIX;
  // A path needs its terminating NUL inside sun_path; an abstract name does not.
  const std::size_t room = sizeof out.address.sun_path - (text[0] == '/' ? 1 : 0);
  if (text.size() > room) return std::nullopt;
  std::memcpy(out.address.sun_path, text.data(), text.size());
  if (text[0] == '@') out.address.sun_path[0] = '\0';  // the abstract namespace
  out.length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() + (text[0] == '/' ? 1 : 0));
  return out;
}

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self) noexcept {
  const auto interval = environment::decode_number(usec);
  if (!interval || *interval <= 0) return std::nullopt;
  if (pid != nullptr) {
    const auto for_pid = environment::decode_number(pid);
    if (!for_pid || *for_pid != self) return std::nullopt;
  }
  return std::chrono::microseconds(std::max<long>(*interval / 2, 1));
}

std::string ready_message(pid_t main_pid, std::string_view status) {
  std::string message = "READY=1\nMAINPID=" + std::to_string(main_pid);
  append_status(message, status);
  return message;
}

std::string reloading_message(std::uint64_t monotonic, std::string_view status) {
  std::string message = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic);
  append_status(message, status);
  return message;
}

std::string stopping_message(std::string_view status) {
  std::string message = "STOPPING=1";
  append_status(message, status);
  return message;
}

std::string status_message(std::string_view status) {
  std::string message;
  append_status(message, status);
  return message.empty() ? message : message.substr(1);  // no newline before the only line
}

std::uint64_t monotonic_usec() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

SdNotifier SdNotifier::from_environment() {
  SdNotifier notifier;
  const char* socket_name = environment::find(environ, environment::notify_socket);
  const std::string name = socket_name != nullptr ? socket_name : "";
  const auto target = parse_notify_socket(socket_name);
  const auto interval =
      detail::watchdog_interval(environment::find(environ, environment::watchdog_usec),
                                environment::find(environ, environment::watchdog_pid), ::getpid());
  environment::unset(environment::notify_variables);
  if (socket_name == nullptr) return notifier;
  if (!target) {
    log(LogLevel::warning, "NOTIFY_SOCKET=", name,
        " is neither a path nor an abstract socket name ('@...') that fits: not notifying systemd");
    return notifier;
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    log(LogLevel::warning, "cannot create the socket to notify systemd: ", std::strerror(errno));
    return notifier;
  }
  notifier.fd_ = fd;
  notifier.target_ = *target;
  if (interval) notifier.watchdog_interval_ = *interval;
  log(LogLevel::debug, "notifying systemd at ", name,
      interval ? " with a watchdog ping every " + std::to_string(interval->count()) + " us" : std::string());
  return notifier;
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

SdNotifier::SdNotifier(SdNotifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      target_(other.target_),
      watchdog_interval_(other.watchdog_interval_),
      warned_(other.warned_) {}

SdNotifier& SdNotifier::operator=(SdNotifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    target_ = other.target_;
    watchdog_interval_ = other.watchdog_interval_;
    warned_ = other.warned_;
  }
  return *this;
}

void SdNotifier::send(std::string_view message) {
  if (fd_ < 0) return;
  ssize_t sent = 0;
  do {
    sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&target_.address), target_.length);
  } while (sent < 0 && errno == EINTR);
  if (sent >= 0 || warned_) return;
  warned_ = true;
  std::string first_line(message.substr(0, message.find('\n')));
  log(LogLevel::warning, "cannot notify systemd (", first_line, "): ", std::strerror(errno),
      "; going on without (later failures are not logged)");
}

}  // namespace multinode::detail

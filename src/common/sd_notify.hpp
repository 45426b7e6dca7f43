// systemd's notification protocol (sd_notify(3)), spoken by the master itself
// rather than through libsystemd: NOTIFY_SOCKET names an AF_UNIX datagram socket
// (a path, or '@' for the abstract namespace) and each notification is one
// datagram of "KEY=value" lines. docs/systemd.md says what each message means.
// In common so that the runtime (core) can own it while the message texts stay
// testable on their own.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace multinode::detail {

// Where notifications go: NOTIFY_SOCKET as an address; nullopt when it is not a
// path ('/...') or an abstract name ('@...') that fits sockaddr_un.
struct NotifyAddress {
  sockaddr_un address{};
  socklen_t length = 0;
};
std::optional<NotifyAddress> parse_notify_socket(const char* value) noexcept;

// Half of WATCHDOG_USEC, the interval systemd asks pings at; nullopt when there is
// no watchdog for this process: WATCHDOG_USEC absent, not a positive decimal, or
// WATCHDOG_PID set to any pid but self.
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self) noexcept;

// The message texts. status becomes a STATUS= line with any newline replaced by a
// blank (a newline would start another key); an empty status adds no line.
std::string ready_message(pid_t main_pid, std::string_view status);
std::string reloading_message(std::uint64_t monotonic_usec, std::string_view status);
std::string stopping_message(std::string_view status);
std::string status_message(std::string_view status);
inline constexpr std::string_view watchdog_message = "WATCHDOG=1";

// CLOCK_MONOTONIC in microseconds, what MONOTONIC_USEC= carries.
std::uint64_t monotonic_usec() noexcept;

class SdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and removes them from this
  // process's environment, so that no worker (or program started by one) can
  // notify on the master's behalf. Disabled when NOTIFY_SOCKET is absent or unusable.
  static SdNotifier from_environment();

  SdNotifier() = default;
  ~SdNotifier();
  SdNotifier(SdNotifier&& other) noexcept;
  SdNotifier& operator=(SdNotifier&& other) noexcept;

  bool enabled() const noexcept { return fd_ >= 0; }
  // Zero when systemd watches no watchdog of this process.
  std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_interval_; }

  // One datagram, never blocking; the first failure is logged at warning level,
  // later ones are not (the service goes on either way).
  void send(std::string_view message);

 private:
  int fd_ = -1;
  NotifyAddress target_{};
  std::chrono::microseconds watchdog_interval_{0};
  bool warned_ = false;
};

}  // namespace multinode::detail

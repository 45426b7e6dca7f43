// Times how long a server takes to replace a killed worker, for bench/respawn.sh.
//
//   respawn_probe [--kills N] [--interval-ms M] [--timeout-ms T] NAME=PORT...
//
// The servers greet every connection with a line "... pid <pid>" from the
// process that accepted it. For each of N rounds, and for each NAME=PORT in turn
// (so that the servers alternate), the probe:
//   1. learns the current worker's pid from a greeting;
//   2. waits until that worker has been seen up for M ms (default 1500), so that
//      a supervisor's back-off for workers that "died young" is not what is timed;
//   3. reads the clock, kill(pid, SIGKILL), then connects and reads until a
//      greeting comes from a different pid, and reads the clock again.
// While no worker exists a connection either waits in the accept queue of a
// listening socket the supervisor keeps (multinode: connect succeeds at once and
// the read blocks until the replacement accepts, so the time is exact to the
// microsecond) or is refused because nothing listens (Node's cluster closes its
// listening socket once its last worker is gone: the probe retries every 200 µs
// and counts the refusals). Node's primary may also accept a connection for the
// dead worker and never hand it on, so while no connection is answered the probe
// opens another one every millisecond; the first greeting from a new pid on any
// of them ends the measurement. Connections closed or reset before a greeting
// (the dying worker's, or those queued on a listening socket that was closed)
// are counted as dropped.
//
// Output: one JSON line per kill on stdout, progress on stderr:
//   {"kind":"kill","server":"multinode","round":1,"old_pid":10,"new_pid":11,"us":1234.5,
//    "connections":1,"refused":0,"dropped":0}
//   {"kind":"kill","server":"multinode","round":2,"old_pid":11,"error":"..."}
// A server that fails once is not killed again. Exit status 1 if any kill failed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::int64_t kRetryPauseNs = 200'000;  // between refused connects

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  timespec ts{.tv_sec = static_cast<time_t>(ns / 1'000'000'000),
              .tv_nsec = static_cast<long>(ns % 1'000'000'000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

struct Target {
  std::string name;
  std::uint16_t port = 0;
  pid_t worker = 0;
  std::int64_t worker_seen_ns = 0;  // when the current worker first greeted us
  bool failed = false;
};

std::optional<pid_t> parse_pid(std::string_view line) {
  const auto at = line.find("pid ");
  if (at == std::string_view::npos) return std::nullopt;
  const char* first = line.data() + at + 4;
  const char* last = line.data() + line.size();
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(first, last, pid);
  if (error != std::errc{} || end == first || pid <= 0) return std::nullopt;
  return pid;
}

// A connection waiting for its greeting line.
struct Pending {
  int fd = -1;
  std::string line;
};

struct Wait {
  pid_t pid = 0;        // 0: no new worker greeted (see error)
  int connections = 0;  // connections that were accepted by the kernel
  int refused = 0;      // connects refused: nothing was listening
  int dropped = 0;      // connections closed or reset before a greeting, or greeted by the killed pid
  std::string error;
};

// Connects to 127.0.0.1:port: the fd, or -errno.
int connect_loopback(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

// Waits for a greeting from a process other than `not_this` (0: any process).
// One connection may wait for ever (Node's primary can accept a connection for a
// worker that just died and never hand it on), so while none is answered a new
// connection is opened every millisecond, and the first greeting on any of them
// from another pid ends the wait. With a supervisor that keeps its listening
// socket, the first connection waits in the accept queue and is answered first.
Wait wait_for_worker(std::uint16_t port, pid_t not_this, std::int64_t deadline_ns) {
  constexpr std::int64_t kReconnectNs = 1'000'000;  // a new connection while others wait
  Wait wait;
  std::vector<Pending> pending;
  std::int64_t next_connect_ns = 0;
  const auto finish = [&pending, &wait](pid_t pid, std::string error) {
    for (const Pending& connection : pending) close(connection.fd);
    wait.pid = pid;
    wait.error = std::move(error);
    return wait;
  };
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= deadline_ns) return finish(0, "no greeting from a new worker in time");
    if (now >= next_connect_ns) {
      const int fd = connect_loopback(port);
      if (fd >= 0) {
        ++wait.connections;
        pending.push_back({fd, {}});
        next_connect_ns = now + kReconnectNs;
      } else if (fd == -ECONNREFUSED) {
        ++wait.refused;
        next_connect_ns = now + kRetryPauseNs;
      } else if (fd == -ECONNRESET || fd == -ECONNABORTED) {
        // The listening socket closed while our connection waited in its queue
        // (Node's primary does this when its last worker exits).
        ++wait.dropped;
        next_connect_ns = now + kRetryPauseNs;
      } else {
        return finish(0, std::string("connect: ") + std::strerror(-fd));
      }
    }
    std::vector<pollfd> waiting;
    for (const Pending& connection : pending)
      waiting.push_back({.fd = connection.fd, .events = POLLIN, .revents = 0});
    const std::int64_t until_ns = std::min(next_connect_ns, deadline_ns);
    timespec timeout{};
    const std::int64_t left_ns = std::max<std::int64_t>(until_ns - now_ns(), 0);
    timeout.tv_sec = static_cast<time_t>(left_ns / 1'000'000'000);
    timeout.tv_nsec = static_cast<long>(left_ns % 1'000'000'000);
    const int ready = ppoll(waiting.data(), waiting.size(), &timeout, nullptr);
    if (ready < 0 && errno != EINTR) return finish(0, std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    for (std::size_t i = waiting.size(); i-- > 0;) {
      if (waiting[i].revents == 0) continue;
      Pending& connection = pending[i];
      char buffer[256];
      const ssize_t n = read(connection.fd, buffer, sizeof buffer);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n > 0) connection.line.append(buffer, static_cast<std::size_t>(n));
      bool drop = n <= 0;  // closed or reset before a whole greeting
      if (!drop && connection.line.find('\n') != std::string::npos) {
        const auto pid = parse_pid(connection.line);
        if (!pid) {
          return finish(0,
                        "greeting without a pid: " + connection.line.substr(0, connection.line.find('\n')));
        }
        if (*pid != not_this) return finish(*pid, {});
        drop = true;  // the killed process answered before it died: not a replacement
      }
      if (drop) {
        ++wait.dropped;
        close(connection.fd);
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
}

std::string json_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char code[8];
      std::snprintf(code, sizeof code, "\\u%04x", c);
      out += code;
    } else {
      out += c;
    }
  }
  return out;
}

void report_failure(const Target& target, int round, pid_t old_pid, const std::string& error) {
  std::printf("{\"kind\":\"kill\",\"server\":\"%s\",\"round\":%d,\"old_pid\":%d,\"error\":\"%s\"}\n",
              json_escape(target.name).c_str(), round, static_cast<int>(old_pid), json_escape(error).c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "respawn_probe: %s kill %d: %s; not killing it again\n", target.name.c_str(), round,
               error.c_str());
}

[[noreturn]] void usage(const char* complaint) {
  std::fprintf(stderr,
               "respawn_probe: %s\n"
               "usage: respawn_probe [--kills N] [--interval-ms M] [--timeout-ms T] NAME=PORT...\n",
               complaint);
  std::exit(2);
}

int parse_count(const char* text, const char* option) {
  int value = 0;
  const std::string_view view(text);
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error != std::errc{} || end != view.data() + view.size() || value < 1) {
    usage((std::string(option) + " wants a whole number >= 1").c_str());
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  int kills = 20;
  std::int64_t interval_ns = 1500 * std::int64_t{1'000'000};
  std::int64_t timeout_ns = 10'000 * std::int64_t{1'000'000};
  std::vector<Target> targets;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--kills" && i + 1 < argc) {
      kills = parse_count(argv[++i], "--kills");
    } else if (arg == "--interval-ms" && i + 1 < argc) {
      interval_ns = parse_count(argv[++i], "--interval-ms") * std::int64_t{1'000'000};
    } else if (arg == "--timeout-ms" && i + 1 < argc) {
      timeout_ns = parse_count(argv[++i], "--timeout-ms") * std::int64_t{1'000'000};
    } else if (const auto equals = arg.find('='); equals != std::string_view::npos && arg[0] != '-') {
      Target target;
      target.name = std::string(arg.substr(0, equals));
      target.port = static_cast<std::uint16_t>(parse_count(argv[i] + equals + 1, "a port"));
      targets.push_back(std::move(target));
    } else {
      usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (targets.empty()) usage("no NAME=PORT given");

  for (Target& target : targets) {
    const Wait first = wait_for_worker(target.port, 0, now_ns() + timeout_ns);
    if (first.pid == 0) {
      std::fprintf(stderr, "respawn_probe: %s on port %u: %s\n", target.name.c_str(), target.port,
                   first.error.c_str());
      return 1;
    }
    target.worker = first.pid;
    target.worker_seen_ns = now_ns();
  }

  bool any_failed = false;
  for (int round = 1; round <= kills; ++round) {
    for (Target& target : targets) {
      if (target.failed) continue;
      sleep_ns(target.worker_seen_ns + interval_ns - now_ns());
      // The worker may have been replaced since we last looked (it should not have).
      const Wait current = wait_for_worker(target.port, 0, now_ns() + timeout_ns);
      if (current.pid == 0) {
        report_failure(target, round, target.worker, "before the kill: " + current.error);
        target.failed = any_failed = true;
        continue;
      }
      if (current.pid != target.worker) {
        std::fprintf(stderr, "respawn_probe: %s: worker %d was replaced by %d without being killed\n",
                     target.name.c_str(), static_cast<int>(target.worker), static_cast<int>(current.pid));
        target.worker = current.pid;
        target.worker_seen_ns = now_ns();
        sleep_ns(interval_ns);
      }

      const pid_t old_pid = target.worker;
      const std::int64_t killed_ns = now_ns();
      if (kill(old_pid, SIGKILL) != 0) {
        report_failure(target, round, old_pid, std::string("kill: ") + std::strerror(errno));
        target.failed = any_failed = true;
        continue;
      }
      const Wait replaced = wait_for_worker(target.port, old_pid, killed_ns + timeout_ns);
      const std::int64_t greeted_ns = now_ns();
      if (replaced.pid == 0) {
        report_failure(target, round, old_pid, replaced.error);
        target.failed = any_failed = true;
        continue;
      }
      const double us = static_cast<double>(greeted_ns - killed_ns) / 1000.0;
      std::printf(
          "{\"kind\":\"kill\",\"server\":\"%s\",\"round\":%d,\"old_pid\":%d,\"new_pid\":%d,\"us\":%.1f,"
          "\"connections\":%d,\"refused\":%d,\"dropped\":%d}\n",
          json_escape(target.name).c_str(), round, static_cast<int>(old_pid), static_cast<int>(replaced.pid),
          us, replaced.connections, replaced.refused, replaced.dropped);
      std::fflush(stdout);
      std::fprintf(stderr, "respawn_probe: %s kill %d/%d: %.3f ms (pid %d -> %d)\n", target.name.c_str(),
                   round, kills, us / 1000.0, static_cast<int>(old_pid), static_cast<int>(replaced.pid));
      target.worker = replaced.pid;
      target.worker_seen_ns = greeted_ns;
    }
  }
  return any_failed ? 1 : 0;
}

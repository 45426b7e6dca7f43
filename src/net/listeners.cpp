#include "net/listeners.hpp"

#include "common/environment.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <system_error>

extern char** environ;

namespace multinode::detail {
namespace {

std::string describe(const sockaddr* address) {
  char host[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  }
  // Appended piece by piece: GCC 12's -Wrestrict misfires on "[" + std::string(...) at -O3.
  std::string text;
  const bool v6 = address->sa_family == AF_INET6;
  if (v6) text.push_back('[');
  text.append(host);
  if (v6) text.push_back(']');
  text.push_back(':');
  text.append(std::to_string(port));
  return text;
}

[[noreturn]] void fail(int error, const std::string& what) {
  std::string advice;
  if (error == EADDRINUSE) advice = " (another process listens there: stop it or pick another port)";
  if (error == EACCES)
    advice = " (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a port above 1023)";
  if (error == EADDRNOTAVAIL) advice = " (no interface has this address: check the host option)";
  throw std::system_error(error, std::generic_category(), what + advice);
}

int bind_one(const sockaddr* address, socklen_t length, int backlog, bool reuseport, bool v6only) {
  const int fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno, "cannot create a socket for " + describe(address));
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    const int error = errno;
    ::close(fd);
    fail(error, "cannot set SO_REUSEPORT on " + describe(address));
  }
  if (address->sa_family == AF_INET6) {
    const int value = v6only ? 1 : 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof value);
  }
  if (::bind(fd, address, length) != 0) {
    const int error = errno;
    ::close(fd);
    fail(error, "cannot bind " + describe(address));
  }
  if (::listen(fd, backlog) != 0) {
    const int error = errno;
    ::close(fd);
    fail(error, "cannot listen on " + describe(address));
  }
  return fd;
}

}  // namespace

std::uint16_t local_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return 0;
}

std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string* why) {
  const auto fail = [why, &text](const std::string& reason) -> std::optional<ListenAddress> {
    if (why != nullptr) *why = "listen address '" + text + "': " + reason;
    return std::nullopt;
  };
  ListenAddress out;
  std::string where = text;
  if (const auto equals = text.find('='); equals != std::string::npos) {
    out.name = text.substr(equals + 1);
    where = text.substr(0, equals);
    if (out.name.empty() || out.name.size() > 255 ||
        out.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
            std::string::npos) {
      return fail("NAME must be 1 to 255 of A-Z a-z 0-9 _ . - (it goes into LISTEN_FDNAMES)");
    }
  }
  const auto colon = where.rfind(':');
  if (colon == std::string::npos) return fail("give HOST:PORT, e.g. 127.0.0.1:8080 or :8080");
  out.host = where.substr(0, colon);
  const std::string port = where.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return fail("PORT must be a number from 0 to 65535");
  }
  out.port = static_cast<std::uint16_t>(std::stoul(port));
  if (out.host.find(':') != std::string::npos && !(out.host.front() == '[' && out.host.back() == ']'))
    return fail("an IPv6 address goes in brackets: [::1]:8080");
  return out;
}

std::vector<ListenSocket> bind_listeners(const Options& options, std::uint16_t port, bool reuseport) {
  if (!options.listen.empty()) {
    if (reuseport) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "Options::listen (--listen) with Balancing::reuseport is not supported: "
                              "use the shared balancing, or host and port");
    }
    std::vector<ListenSocket> all;
    try {
      for (const auto& entry : options.listen) {
        std::string why;
        const auto address = parse_listen_address(entry, &why);
        if (!address) throw std::system_error(std::make_error_code(std::errc::invalid_argument), why);
        Options one = options;
        one.listen.clear();
        one.host = address->host;
        for (auto& socket : bind_listeners(one, address->port, false)) {
          socket.label = address->name;
          all.push_back(std::move(socket));
        }
      }
    } catch (...) {
      for (const auto& s : all) ::close(s.fd);
      throw;
    }
    return all;
  }
  std::vector<ListenSocket> sockets;
  auto add = [&](const sockaddr* address, socklen_t length, bool v6only) {
    const int fd = bind_one(address, length, options.backlog, reuseport, v6only);
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
    sockets.push_back({fd, describe(reinterpret_cast<sockaddr*>(&bound))});
    // With port 0 every further address must use the port the first one got.
    if (port == 0) port = local_port(fd);
  };

  if (options.host.empty()) {
    sockaddr_in6 any6{};
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    any6.sin6_port = htons(port);
    const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      ::close(probe);
      add(reinterpret_cast<sockaddr*>(&any6), sizeof any6, false);  // dual-stack: IPv4 too
      return sockets;
    }
    sockaddr_in any4{};
    any4.sin_family = AF_INET;
    any4.sin_addr.s_addr = htonl(INADDR_ANY);
    any4.sin_port = htons(port);
    add(reinterpret_cast<sockaddr*>(&any4), sizeof any4, false);
    return sockets;
  }

  std::string host = options.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
  if (rc != 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "cannot resolve host '" + options.host + "': " + ::gai_strerror(rc) +
                                " (give an IPv4 or IPv6 address or a name this machine resolves)");
  }
  std::vector<std::string> seen;
  try {
    for (const addrinfo* entry = result; entry != nullptr; entry = entry->ai_next) {
      if (entry->ai_family != AF_INET && entry->ai_family != AF_INET6) continue;
      // A name may resolve to the same address twice (once per protocol): bind it once.
      const std::string key = describe(entry->ai_addr);
      bool duplicate = false;
      for (const auto& s : seen) duplicate = duplicate || s == key;
      if (duplicate) continue;
      seen.push_back(key);
      if (port == 0 && !sockets.empty()) {
        // Keep every address on the port the first one got.
        if (entry->ai_family == AF_INET6)
          reinterpret_cast<sockaddr_in6*>(entry->ai_addr)->sin6_port = htons(port);
        else
          reinterpret_cast<sockaddr_in*>(entry->ai_addr)->sin_port = htons(port);
      }
      add(entry->ai_addr, entry->ai_addrlen, true);
    }
  } catch (...) {
    ::freeaddrinfo(result);
    for (const auto& s : sockets) ::close(s.fd);
    throw;
  }
  ::freeaddrinfo(result);
  if (sockets.empty()) {
    throw std::system_error(std::make_error_code(std::errc::address_not_available),
                            "host '" + options.host + "' resolves to no IPv4 or IPv6 address");
  }
  return sockets;
}

std::optional<std::vector<ListenSocket>> inherited_listeners() {
  const auto passed = environment::decode_listen_fds(environ);
  if (!passed || passed->pid != ::getpid()) return std::nullopt;  // none, or meant for another process
  environment::unset(environment::listen_variables);

  std::vector<ListenSocket> sockets;
  const int count = passed->count;
  const auto& names = passed->names;
  constexpr int first_fd = environment::first_listen_fd;
  for (int i = 0; i < count; ++i) {
    const int fd = first_fd + i;
    struct stat info {};
    int listening = 0;
    socklen_t length = sizeof listening;
    if (::fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode) ||
        ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening == 0) {
      throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                              "LISTEN_FDS says fd " + std::to_string(fd) +
                                  " is a listening socket, but it is not (check the socket unit)");
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    std::string name = i < static_cast<int>(names.size()) ? names[i] : "";
    sockets.push_back({fd, name.empty() ? "fd " + std::to_string(fd) : name});
  }
  return sockets;
}

}  // namespace multinode::detail

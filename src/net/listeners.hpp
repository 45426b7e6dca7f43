// Listening sockets: binding them in the master, or taking the ones systemd (or a
// multinode master) passed with LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES.
#pragma once

#include <multinode/options.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail {

struct ListenSocket {
  int fd = -1;
  std::string name;   // for the log, e.g. "127.0.0.1:8080"
  std::string label;  // Options::listen's NAME for LISTEN_FDNAMES; empty: "multinode"
};

// One entry of Options::listen: "HOST:PORT" or "HOST:PORT=NAME" (HOST may be
// empty for every address, or an IPv6 address in brackets; NAME is 1 to 255 of
// A-Z a-z 0-9 _ . -, as LISTEN_FDNAMES allows). nullopt, with why, when malformed.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
  std::string name;
};
std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string* why = nullptr);

// Binds and listens on every address of options.host (all addresses when empty:
// a dual-stack [::] socket, or 0.0.0.0 where IPv6 is off). With reuseport each
// call binds a further SO_REUSEPORT group member on the same addresses and port.
// Throws std::system_error saying which address failed and what to do.
// With Options::listen, its sockets (reuseport is refused then).
std::vector<ListenSocket> bind_listeners(const Options& options, std::uint16_t port, bool reuseport);

// The sockets passed by the convention of sd_listen_fds(3), when LISTEN_PID is this
// process; nullopt when none were passed. Unsets the variables and makes the fds close-on-exec.
std::optional<std::vector<ListenSocket>> inherited_listeners();

// The port a listening socket is bound to.
std::uint16_t local_port(int fd);

}  // namespace multinode::detail

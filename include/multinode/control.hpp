// The client side of a master's control socket (Options::control_socket): send
// one command, get its whole reply. What `multinode status`, `metrics`, `reload`,
// `scale N` and `stop` are built on; usable from any program of the same user.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>

namespace multinode {

// Connects to the control socket at socket_path, writes command and a newline,
// and reads the reply until the master closes the connection. The reply is
// returned as sent: JSON for "status", Prometheus text for "metrics", one line
// ("ok: ..." or "error: ...") for the others. Throws std::system_error saying
// what failed and what to do (no master at that path, no permission, no reply
// within timeout, a reply over 64 MiB).
std::string control_command(const std::string& socket_path, std::string_view command,
                            std::chrono::milliseconds timeout = std::chrono::seconds{10});
// The same without exceptions: on failure error is set and the result is empty.
std::string control_command(const std::string& socket_path, std::string_view command,
                            std::chrono::milliseconds timeout, std::error_code& error);

}  // namespace multinode

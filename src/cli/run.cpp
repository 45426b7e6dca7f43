// What the `multinode` command does once its command line is parsed: supervise
// (through the library's listen(), whose supervisor starts the foreign workers) or
// send one command to a running supervisor's control socket.
#include "cli/command_line.hpp"

#include <multinode/control.hpp>
#include <multinode/nodes.hpp>

#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <system_error>

namespace multinode::cli {
namespace {

// The directory of the default control path under /tmp: made 0700, and refused
// when someone else owns it (they could listen on the path in our place).
bool prepare_control_directory(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  const std::string dir = path.substr(0, slash);
  if (dir.rfind("/tmp/multinode-", 0) != 0) return true;  // a directory the user chose or the system made
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "multinode: cannot create %s: %s; give --control PATH\n", dir.c_str(),
                 std::strerror(errno));
    return false;
  }
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid() ||
      (info.st_mode & 077) != 0) {
    std::fprintf(
        stderr,
        "multinode: %s is not a private directory of this user (mode 0700): another user may have made "
        "it; remove it, or give --control PATH\n",
        dir.c_str());
    return false;
  }
  return true;
}

// --stop-with-parent: SIGTERM (a graceful stop) when the parent ends, however it
// ends; refused when it ended while the signal was being asked for. (A parent that
// is pid 1 is a parent too: `node app.js` as a container's first process.)
bool follow_parent() {
  const pid_t parent = ::getppid();
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    std::fprintf(stderr, "multinode: --stop-with-parent: prctl(PR_SET_PDEATHSIG) failed: %s\n",
                 std::strerror(errno));
    return false;
  }
  if (::getppid() != parent) {
    std::fprintf(stderr,
                 "multinode: --stop-with-parent: the process that started this command has ended already; "
                 "nothing was started\n");
    return false;
  }
  return true;
}

int supervise(const Invocation& invocation) {
  if (invocation.stop_with_parent && !follow_parent()) return 1;
  if (!prepare_control_directory(invocation.options.control_socket)) return 1;
  try {
    Nodes nodes = listen(invocation.options);
    return nodes.run();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "multinode: %s\n", e.what());
    return 1;
  }
}

int control(const Invocation& invocation) {
  std::string reply;
  try {
    reply = control_command(invocation.control_path, invocation.control_line, std::chrono::seconds{10});
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "multinode %s: %s\n", invocation.control_line.c_str(), e.what());
    return 1;
  }
  if (invocation.control_line == "status" && !invocation.status_json) {
    std::cout << status_table(reply) << std::flush;
    return 0;
  }
  std::cout << reply << std::flush;
  return reply.rfind("error:", 0) == 0 ? 1 : 0;
}

}  // namespace

int run_command(int argc, char** argv) {
  const Invocation invocation = parse_command_line(std::vector<std::string>(argv, argv + argc));
  switch (invocation.action) {
    case Action::exit:
      std::fputs(invocation.message.c_str(), invocation.exit_status == 0 ? stdout : stderr);
      return invocation.exit_status;
    case Action::run:
      return supervise(invocation);
    case Action::control:
      return control(invocation);
  }
  return 1;
}

}  // namespace multinode::cli

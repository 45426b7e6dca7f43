// The `multinode` command's command line (docs/cli.md): what to do, parsed by
// CLI11 into the library's Options for `run` and into a control-socket command
// for the others. Apart from main() so that the unit tests can parse too.
#pragma once

#include <multinode/options.hpp>

#include <string>
#include <vector>

namespace multinode::cli {

enum class Action {
  exit,     // --help, --version, or an error: print `message`, exit with `exit_status`
  run,      // supervise options.worker_command
  control,  // send control_line to the control socket, print the reply
};

struct Invocation {
  Action action = Action::exit;
  int exit_status = 0;
  std::string message;  // for Action::exit: what to print (stdout when exit_status is 0, else stderr)
  Options options;      // Action::run
  std::string control_path;
  std::string control_line;       // Action::control: "status", "metrics", "reload", "scale 4", "stop"
  bool status_json = false;       // status --json: the reply as it is; else a table
  bool stop_with_parent = false;  // run --stop-with-parent
};

// The control socket's path when --control is not given: $XDG_RUNTIME_DIR/multinode.sock
// when XDG_RUNTIME_DIR is set, /run/multinode.sock for root, else
// /tmp/multinode-UID/control.sock (run creates the directory, mode 0700).
std::string default_control_path();

Invocation parse_command_line(const std::vector<std::string>& args);

// The human form of `status`'s JSON: one line for the master, one per worker.
// The JSON itself (as sent) when it cannot be read.
std::string status_table(const std::string& json);

// main()'s work: parse, then run the supervisor or one control command.
int run_command(int argc, char** argv);

}  // namespace multinode::cli

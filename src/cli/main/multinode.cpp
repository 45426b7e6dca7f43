// The `multinode` command (docs/cli.md): multinode run [OPTIONS] -- PROGRAM [ARGS...],
// and the control socket's clients status, metrics, reload, scale N, stop.
#include "cli/command_line.hpp"

int main(int argc, char** argv) {
  return multinode::cli::run_command(argc, argv);
}

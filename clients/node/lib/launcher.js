'use strict';
// `node app.js` with no MULTINODE_ID: this process becomes a launcher. It starts the
// `multinode` command as its child,
//   multinode run -n NODES -p PORT [--host H] [--no-restart] [runArgs...] -- node [execArgv] app.js [args]
// which runs the same program again as NODES workers (those find MULTINODE_ID and
// serve). The launcher itself serves nothing: it forwards signals to the command and
// exits with its status. No native addon is needed because the launcher never holds
// a socket: the command owns the listening socket and passes it to the workers.

const { EventEmitter } = require('node:events');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGTTIN', 'SIGTTOU'];

function executable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

// The command: options.command, else $MULTINODE_COMMAND, else `multinode` on PATH.
function findCommand(options = {}, env = process.env) {
  const named = options.command ?? env.MULTINODE_COMMAND;
  if (named) {
    if (executable(named)) return path.resolve(named);
    throw new Error(`multinode: ${named} (${options.command ? 'options.command' : 'MULTINODE_COMMAND'}) is not an ` +
      'executable file: give the path of the multinode command');
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'multinode');
    if (executable(candidate)) return candidate;
  }
  throw new Error('multinode: the `multinode` command was not found on PATH. Install it (the multinode .deb, or ' +
    '`cmake --build --preset release --target multinode_command` and put build/release/bin on PATH), or set ' +
    'MULTINODE_COMMAND to its path; then start this program again with `node app.js`, or as ' +
    '`multinode run -n 4 -p 8080 -- node app.js`.');
}

// The original's options as the command's flags. masterListen has nothing to map to:
// under `multinode run` no master serves (the supervisor runs no user code); all
// `nodes` processes are workers, and this launcher never serves.
function commandArguments(options = {}, program = [process.execPath, ...process.execArgv, ...process.argv.slice(1)]) {
  const nodes = options.nodes ?? 1;
  const port = options.port ?? 80;
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`multinode: nodes must be a positive integer, not ${nodes}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`multinode: port must be 0 to 65535, not ${port}`);
  // --stop-with-parent: the command stops gracefully when this launcher ends, even by
  // SIGKILL (which it cannot forward), instead of serving on without it.
  const args = ['run', '--stop-with-parent', '-n', String(nodes), '-p', String(port)];
  if (options.host) args.push('--host', String(options.host));
  if (options.restartChildren === false) args.push('--no-restart');
  const runArgs = (options.runArgs ?? []).map(String);
  // The workers are this program, which says `ready` once its server listens (the
  // client does): a rolling restart then keeps the old worker serving until then.
  if (!runArgs.some((arg) => arg === '--ready' || arg.startsWith('--ready='))) args.push('--ready', 'notify');
  args.push(...runArgs);
  args.push('--', ...program);
  return args;
}

// What listen() returns in the launcher: an EventEmitter that never emits 'node',
// with isMaster false (the launcher is not a member of the mesh), id 0,
// isLauncher true and the command's pid.
class Launcher extends EventEmitter {
  constructor(options) {
    super();
    this.isMaster = false;
    this.isLauncher = true;
    this.id = 0;
    this.slot = 0;
    this.mesh = null;
    this.nodes = options.nodes ?? 1;
    this.command = findCommand(options);
    this.args = commandArguments(options);
    this.supervisorPid = null;
  }

  start() {
    // A session of its own: Ctrl-C (and a terminal's other signals) reach the command
    // once, forwarded from here, not twice (a second SIGINT stops it at once).
    const child = spawn(this.command, this.args, { stdio: 'inherit', detached: true });
    this.child = child;
    this.supervisorPid = child.pid;
    const forward = (signal) => {
      try {
        child.kill(signal);
      } catch {}
    };
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    child.on('error', (error) => {
      process.stderr.write(`multinode: cannot start ${this.command}: ${error.message}\n`);
      process.exit(1);
    });
    child.on('exit', (code, signal) => {
      for (const name of FORWARDED_SIGNALS) process.off(name, forward);
      process.exit(signal ? 128 + (os.constants.signals[signal] ?? 0) : code);
    });
    return this;
  }
}

module.exports = { Launcher, findCommand, commandArguments, FORWARDED_SIGNALS };

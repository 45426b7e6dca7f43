'use strict';
// What `multinode run` gives a worker in its environment (docs/cli.md, the mesh spec),
// read the way the C++ library reads it: every number a non-negative decimal with
// nothing around it, else absent.

function decimal(text, max = 0xffffffff) {
  if (typeof text !== 'string' || !/^[0-9]{1,20}$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) && value <= max ? value : null;
}

const WORKER_VARIABLES = ['MULTINODE_ID', 'MULTINODE_SLOT', 'MULTINODE_NODES', 'MULTINODE_MESH', 'MULTINODE_MASTER',
  'MULTINODE_STANDBY'];
const LISTEN_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'];
const WATCHDOG_VARIABLES = ['WATCHDOG_USEC', 'WATCHDOG_PID'];

// True when this process was started by `multinode run` as a worker.
function isWorker(env = process.env) {
  return env.MULTINODE_ID !== undefined;
}

// The worker's identity and what it was given. Throws an Error that says what is
// wrong when MULTINODE_ID is set but the rest does not make a worker.
function readWorker(env = process.env, pid = process.pid) {
  const id = decimal(env.MULTINODE_ID);
  // A warm standby (`multinode run --standby K`) gets no slot: it is told one when
  // the supervisor promotes it.
  const standby = env.MULTINODE_STANDBY === '1';
  const slot = standby ? null : decimal(env.MULTINODE_SLOT);
  if (standby && id === null) {
    throw new Error(`multinode: MULTINODE_ID=${env.MULTINODE_ID} does not name a standby (a decimal number ` +
      'expected): start this program with `multinode run --standby K -- node app.js` or without these variables');
  }
  if (!standby && (id === null || slot === null)) {
    throw new Error(`multinode: MULTINODE_ID=${env.MULTINODE_ID} and MULTINODE_SLOT=${env.MULTINODE_SLOT} ` +
      'do not name a worker (decimal numbers expected): start this program with `multinode run -- node app.js` ' +
      'or without these variables');
  }
  const count = decimal(env.LISTEN_FDS, 1024);
  const listenPid = decimal(env.LISTEN_PID);
  if (count === null || count < 1 || listenPid !== pid) {
    throw new Error(`multinode: worker ${id} got no listening socket (LISTEN_FDS=${env.LISTEN_FDS}, ` +
      `LISTEN_PID=${env.LISTEN_PID}, this pid ${pid}): start it with \`multinode run\`, which passes them`);
  }
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const listenFds = [];
  for (let i = 0; i < count; i++) listenFds.push({ fd: 3 + i, name: names[i] ?? '' });
  const mesh = env.MULTINODE_MESH && env.MULTINODE_MESH.startsWith('/') ? env.MULTINODE_MESH : null;
  if (standby && !mesh) {
    throw new Error(`multinode: worker ${id} is a standby (MULTINODE_STANDBY=1) but got no MULTINODE_MESH: ` +
      'a Node.js standby says that it waits and learns its promotion only through the mesh (Node.js has no ' +
      'datagram socket for NOTIFY_SOCKET): --standby needs a multinode whose `run` gives the mesh');
  }
  let watchdogUsec = decimal(env.WATCHDOG_USEC, Number.MAX_SAFE_INTEGER);
  const watchdogPid = env.WATCHDOG_PID === undefined ? pid : decimal(env.WATCHDOG_PID);
  if (watchdogUsec === 0 || watchdogPid !== pid) watchdogUsec = null;
  return {
    id,
    slot,
    nodes: decimal(env.MULTINODE_NODES),
    mesh,
    master: !standby && env.MULTINODE_MASTER === '1',
    standby,
    listenFds,
    watchdogUsec,
  };
}

// Once read, the variables leave the environment, so that a program this worker
// starts is not taken for a worker too (as the C++ library does). NOTIFY_SOCKET stays:
// any process of the worker's tree may notify for it.
function forgetWorker(env = process.env) {
  for (const name of [...WORKER_VARIABLES, ...LISTEN_VARIABLES, ...WATCHDOG_VARIABLES]) delete env[name];
}

module.exports = { decimal, isWorker, readWorker, forgetWorker };

// The Node.js hello app of bench/run.sh, the same file under every supervisor:
//
//   multinode run -n 2 -p PORT -- node bench/run_hello.js     fd 3 from LISTEN_FDS (every worker accepts on it)
//   pm2 start bench/run_hello.js -i 2 -- PORT                 cluster mode: listen(PORT) through PM2's primary
//   node bench/run_hello.js PORT                              alone, one process
//
// With --notify (for `multinode run --ready notify`), once it listens it runs
// `systemd-notify --ready`, which sends READY=1 to NOTIFY_SOCKET for it: Node has
// no AF_UNIX datagram socket of its own, and multinode takes the notification from
// any process of the worker's tree.
//
// Under `multinode run --standby` (MULTINODE_STANDBY=1) it is a warm standby: it
// loads and builds its server, says READY=1 (with systemd-notify, --notify or not),
// and waits for SIGUSR2, its promotion, before it serves fd 3 (docs/cli.md,
// "Standby workers"); a SIGTERM while it waits ends it.
//
// A plain `http` server: GET / answers "Hello from node ID (pid PID)\n" (ID:
// MULTINODE_ID under multinode, NODE_APP_INSTANCE under PM2, 0 alone), so that the
// bench can tell which process answered. On SIGINT (what PM2 sends) or SIGTERM
// (what multinode sends) it stops gracefully: it stops accepting, answers the next
// request of each keep-alive connection with "Connection: close", closes the
// connections still idle after STOP_GRACE_MS (as the library's stop_grace: closing
// them at once would race with a request already on its way), and exits 0 once
// every connection is closed.
'use strict';
const {execFile} = require('node:child_process');
const http = require('node:http');
const net = require('node:net');

const STOP_GRACE_MS = 1000;
const id = process.env.MULTINODE_ID ?? process.env.NODE_APP_INSTANCE ?? '0';
const body = `Hello from node ${id} (pid ${process.pid})\n`;
let stopping = false;

const server = http.createServer((request, response) => {
  const headers = {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)};
  if (stopping) headers.Connection = 'close';
  response.writeHead(200, headers);
  response.end(body);
});

function stop() {
  if (stopping) return;
  stopping = true;
  // net.Server's close: stops accepting, waits for the connections. (http.Server's
  // close() would also close the idle keep-alive connections at once.)
  net.Server.prototype.close.call(server, () => process.exit(0));
  setTimeout(() => server.closeIdleConnections(), STOP_GRACE_MS).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const args = process.argv.slice(2);
const notify = args.includes('--notify');
const operands = args.filter((arg) => arg !== '--notify');

const standby = process.env.MULTINODE_STANDBY === '1';

function ready() {
  if (!(notify || standby) || !process.env.NOTIFY_SOCKET) return;
  execFile('systemd-notify', ['--ready'], (error) => {
    if (error) console.error(`run_hello: systemd-notify --ready failed: ${error.message}`);
  });
}

const passed = process.env.LISTEN_FDS && process.env.LISTEN_PID === String(process.pid);
if (passed && standby) {
  // Warm: one request through the whole path (on a private loopback port, closed
  // after), so that the first real one finds the code compiled. Then READY=1 once
  // the SIGUSR2 handler is there: the supervisor signals only after it. (A signal
  // handler does not keep Node's loop alive: the timer does, until then.)
  const waiting = setInterval(() => {}, 1 << 30);
  process.once('SIGUSR2', () => {
    clearInterval(waiting);
    server.listen({fd: 3});
  });
  server.listen(0, '127.0.0.1', () => {
    http.get({host: '127.0.0.1', port: server.address().port, agent: false}, (response) => {
      response.resume();
      response.on('end', () => server.close(ready));
    }).on('error', (error) => {
      console.error(`run_hello: the standby's warm-up request failed: ${error.message}`);
      server.close(ready);
    });
  });
} else if (passed) {
  server.listen({fd: 3}, ready);
} else {
  const port = Number(operands[0] ?? process.env.PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: node bench/run_hello.js [--notify] PORT (or under multinode run: fd 3 from LISTEN_FDS)');
    process.exit(2);
  }
  server.listen(port, '127.0.0.1', ready);
}

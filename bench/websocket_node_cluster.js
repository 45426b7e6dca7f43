// The Node.js peer of bench/websocket.sh: npm `ws` 8 on Node's own `cluster`,
// the usual way. The primary forks the workers and only supervises (with the
// default round-robin policy on Linux it also accepts connections and hands
// them to the workers); every worker runs a `ws` server on the shared port.
//
//   node bench/websocket_node_cluster.js --mode echo|broadcast --port PORT [--nodes N] [--host ADDRESS]
//                                        [--deflate-threshold BYTES]
//
// echo:      every message goes back to its sender with its kind.
// broadcast: a message from a client goes to every other client of its worker
//            and, through the primary (process.send), to every client of the
//            other workers: the way the ws and cluster documentation do it.
// --deflate-threshold turns permessage-deflate on (bench/websocket.sh --deflate).
// --nodes defaults to one worker per core. The primary prints "ready" once every
// worker listens.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

function usage(problem) {
  console.error(`websocket_node_cluster.js: ${problem}
usage: node bench/websocket_node_cluster.js --mode echo|broadcast --port PORT [--nodes N] [--host ADDRESS]
                                           [--deflate-threshold BYTES]`);
  process.exit(2);
}

const options = { mode: '', port: 0, nodes: os.availableParallelism ? os.availableParallelism() : os.cpus().length, host: '127.0.0.1', deflateThreshold: -1 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const [name, value] = [args[i], args[i + 1]];
  if (value === undefined) usage(`${name} wants a value`);
  if (name === '--mode') options.mode = value;
  else if (name === '--port') options.port = Number(value);
  else if (name === '--nodes') options.nodes = Number(value);
  else if (name === '--host') options.host = value;
  else if (name === '--deflate-threshold') options.deflateThreshold = Number(value);
  else usage(`unknown argument '${name}'`);
}
if (options.mode !== 'echo' && options.mode !== 'broadcast') usage('--mode must be echo or broadcast');
if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65535) usage('--port is required (1..65535)');
if (!Number.isInteger(options.nodes) || options.nodes < 1) usage('--nodes wants a whole number >= 1');

if (cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === options.nodes) console.log('ready');
  });
  cluster.on('exit', (worker, code, signal) => {
    console.error(`worker ${worker.process.pid} exited (${signal || code})`);
  });
  // The relay: a message one worker received goes to every other worker.
  cluster.on('message', (from, message) => {
    for (const id in cluster.workers) {
      const worker = cluster.workers[id];
      if (worker !== from && worker.isConnected()) worker.send(message);
    }
  });
  for (let i = 0; i < options.nodes; i++) cluster.fork();
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  // The repository's node_modules (package.json pins ws 8.23.0), wherever node runs from.
  const { WebSocketServer, WebSocket } = require(path.join(__dirname, '..', 'node_modules', 'ws'));
  const server = http.createServer((request, response) => {
    response.writeHead(426, { 'Content-Type': 'text/plain' });
    response.end('upgrade to WebSocket at /\n');
  });
  // --deflate-threshold: permessage-deflate as multinode's websocket_echo --deflate-threshold
  // does it (no context takeover either way, zlib's default level and memLevel).
  const perMessageDeflate = options.deflateThreshold < 0 ? false
    : { threshold: options.deflateThreshold, serverNoContextTakeover: true, clientNoContextTakeover: true };
  const wss = new WebSocketServer({ server, path: '/', perMessageDeflate });
  if (options.mode === 'echo') {
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  } else {
    const sendLocal = (data, isBinary, except) => {
      for (const client of wss.clients) {
        if (client !== except && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    };
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => {
        sendLocal(data, isBinary, ws);
        process.send({ binary: isBinary, data: isBinary ? data.toString('base64') : data.toString() });
      });
    });
    process.on('message', (message) => {
      sendLocal(message.binary ? Buffer.from(message.data, 'base64') : message.data, message.binary, null);
    });
  }
  server.listen(options.port, options.host);
}

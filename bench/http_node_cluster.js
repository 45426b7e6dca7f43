// The Node.js peer of bench/http.sh: Node's own `cluster` module, as its
// documentation shows it. The primary forks the workers and only supervises
// (with the default round-robin policy on Linux it also accepts connections and
// hands them to the workers); every worker answers every request with 14 bytes.
//
//   node bench/http_node_cluster.js PORT [WORKERS]     (WORKERS defaults to 2)
//
// The primary prints "ready" once every worker listens.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 2);
if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(workers) || workers < 1) {
  console.error('usage: node bench/http_node_cluster.js PORT [WORKERS]');
  process.exit(2);
}

if (cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) console.log('ready');
  });
  cluster.on('exit', (worker, code, signal) => {
    console.error(`worker ${worker.process.pid} exited (${signal || code})`);
  });
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  http.createServer((q, s) => s.end('Hello, World!\n')).listen(port, '127.0.0.1');
}

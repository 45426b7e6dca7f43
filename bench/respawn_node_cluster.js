// The Node.js peer of bench/respawn.sh: a `cluster` primary that forks WORKERS
// workers and forks a new one as soon as one exits, which is what a Node
// application has to write itself to get its workers restarted. Every
// connection first gets one line "node <id> pid <pid>", then echo, as
// multinode's examples/echo does.
//
//   node bench/respawn_node_cluster.js PORT [WORKERS]     (WORKERS defaults to 1)
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 1);
if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(workers) || workers < 1) {
  console.error('usage: node bench/respawn_node_cluster.js PORT [WORKERS]');
  process.exit(2);
}

if (cluster.isPrimary) {
  cluster.on('exit', () => cluster.fork());
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const greeting = `node ${cluster.worker.id} pid ${process.pid}\n`;
  net.createServer((socket) => {
    socket.on('error', () => {});  // a client that resets is not the worker's problem
    socket.write(greeting);
    socket.pipe(socket);
  }).listen(port, '127.0.0.1');
}

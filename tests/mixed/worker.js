'use strict';
// The Node.js worker of the mixed mesh test (test_mixed_mesh.py): the protocol of
// tests/programs/run_node.cpp, line for line, so that the three languages check each other.
const http = require('node:http');
const multinode = require(process.env.MULTINODE_NODE_CLIENT);

const textFor = (from, to) => `hello from node ${from} to node ${to} \u2713`;
const binaryFor = (from, to) => {
  const bytes = Buffer.alloc(300);
  for (let i = 0; i < bytes.length; ++i) bytes[i] = (i * 7 + from * 31 + to) & 0xff;
  return bytes;
};
const jsonFor = (from, to) => ({ from, to, note: '\u00fcn\u00efc\u00f6d\u00e9' });
const sameJson = (a, b) => typeof a === 'object' && a !== null && !Array.isArray(a) &&
  Object.keys(a).length === Object.keys(b).length && Object.keys(b).every((k) => a[k] === b[k]);

const server = http.createServer((request, response) => {
  response.end(`node ${nodes.id} pid ${process.pid} master ${nodes.isMaster ? 1 : 0}\n`);
});
const nodes = multinode.listen({}, server);
const me = nodes.id;
console.log(`started node ${me} slot ${nodes.slot} master ${nodes.isMaster ? 1 : 0}`);
nodes.on('node', (socket) => {
  const peer = socket.peerId;
  const framed = multinode.frameStream(socket);
  console.log(`peer ${peer} slot ${socket.peerSlot}`);
  framed.on('message', (message) => {
    let kind = 'unexpected';
    if (typeof message === 'string' && message === textFor(peer, me)) kind = 'verified text';
    else if (Buffer.isBuffer(message) && message.equals(binaryFor(peer, me))) kind = 'verified binary';
    else if (!Buffer.isBuffer(message) && sameJson(message, jsonFor(peer, me))) kind = 'verified json';
    console.log(kind === 'unexpected' ? `unexpected message from ${peer}` : `${kind} from ${peer}`);
  });
  framed.on('close', () => console.log(`ended ${peer}`));
  framed.send(textFor(me, peer));
  framed.send(binaryFor(me, peer));
  framed.send(jsonFor(me, peer));
});
process.on('exit', () => console.log('stopped'));

'use strict';
// multinode for Node.js: the original multi-node's API on top of `multinode run`.
//   const nodes = require('multinode').listen({port: 8080, nodes: 4}, server);
// In a worker of `multinode run` (MULTINODE_ID is set), listen() serves `server` on the
// socket the supervisor passed at fd 3 and joins the mesh; in a process started as
// `node app.js`, it starts `multinode run ... -- node app.js` and waits for it
// (README.md in this folder).

const environment = require('./lib/environment');
const frames = require('./lib/frames');
const { Launcher } = require('./lib/launcher');
const { Worker } = require('./lib/worker');

let started = null;

function listen(options = {}, server) {
  if (!server || typeof server.listen !== 'function' || typeof server.once !== 'function') {
    throw new TypeError('multinode: listen(options, server) needs a server: an http.Server or a net.Server');
  }
  if (started) throw new Error('multinode: listen() was called already in this process (it serves one server)');
  if (environment.isWorker()) {
    const identity = environment.readWorker();
    environment.forgetWorker();
    started = new Worker(identity, options, server);
  } else {
    started = new Launcher(options);
  }
  return started.start();
}

module.exports = {
  listen,
  frameStream: frames.frameStream,
  FramedStream: frames.FramedStream,
  FrameDecoder: frames.FrameDecoder,
};

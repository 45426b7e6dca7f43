'use strict';
// A worker of `multinode run`: serves on the socket at fd 3, joins the mesh through the
// supervisor's broker ($MULTINODE_MESH/supervisor.sock), listens on its own
// $MULTINODE_MESH/<id>.sock for the workers that join later and connects to the ones
// that joined before (the mesh spec, docs/protocol.md), says `ready` once the server
// listens, sends `watchdog` heartbeats, and stops gracefully on SIGTERM.
// A warm standby (MULTINODE_STANDBY=1, `multinode run --standby K`) says `standby` and
// `ready` instead, serves nothing and joins nobody until the supervisor's `promote`
// record gives it a slot; then it serves and joins as any worker.

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');

const records = require('./records');

const debug = util.debuglog('multinode');
const HELLO_TIMEOUT_MS = 5000;
const SUN_PATH_MAX = 107;
const DEFAULT_STOP_TIMEOUT_MS = 5000;

class Worker extends EventEmitter {
  constructor(identity, options, server) {
    super();
    this.id = identity.id;
    this.slot = identity.slot;
    this.nodes = identity.nodes;
    this.isLauncher = false;
    this.listenFds = identity.listenFds;
    this.mesh = identity.mesh;  // $MULTINODE_MESH, or null under a supervisor without the mesh
    // Without a broker (a supervisor that gives no MULTINODE_MESH) nobody hands the
    // role over: slot 1's worker holds it, which is one process except for the moment
    // a slot-1 worker is being replaced.
    this.isMaster = identity.mesh ? identity.master : identity.slot === 1;
    this.server = server;
    this.identity = identity;
    this.stopTimeout = options.stopTimeout ?? DEFAULT_STOP_TIMEOUT_MS;
    this.streams = new Set();
    this.serving = false;
    this.joined = false;
    this.readySent = false;
    this.stopping = false;
    this.supervisor = null;
    this.standby = Boolean(identity.standby);  // true until promoted
    this.waiting = false;  // a standby whose `standby` record went out, not promoted yet
  }

  start() {
    this.watchSignals();
    if (this.standby) {
      // No server.listen() and no join until the promotion: readWorker() made sure there
      // is a mesh, the only way a Node.js standby can say that it waits.
      this.startMesh();
      return this;
    }
    this.server.once('listening', () => {
      this.serving = true;
      this.sendReady();
    });
    this.server.listen({ fd: this.listenFds[0].fd });
    if (this.identity.mesh) {
      this.startMesh();
    } else if (this.identity.watchdogUsec) {
      process.emitWarning('WATCHDOG_USEC is set but the supervisor gave no MULTINODE_MESH, and Node.js cannot send ' +
        'WATCHDOG=1 datagrams: use a multinode whose `run` has the mesh, or drop --heartbeat-timeout', 'MultinodeWarning');
    }
    return this;
  }

  startMesh() {
    const own = path.join(this.identity.mesh, `${this.id}.sock`);
    if (Buffer.byteLength(own) > SUN_PATH_MAX) {
      throw new Error(`multinode: the mesh socket path ${own} is longer than ${SUN_PATH_MAX} bytes: ` +
        'give multinode run a shorter runtime directory');
    }
    try {
      fs.unlinkSync(own);  // a stale one of an earlier supervisor; ours does not exist yet
    } catch {}
    this.meshServer = net.createServer((socket) => this.accept(socket));
    this.meshServer.on('error', (error) => {
      if (this.standby) {
        this.emit('error', new Error(`multinode: standby ${this.id} cannot listen on ${own} (${error.message}): ` +
          'it cannot wait for a promotion; check the mesh directory that multinode run gave'));
        return;
      }
      process.emitWarning(`multinode: worker ${this.id} cannot listen on ${own} (${error.message}): no mesh streams`,
        'MultinodeWarning');
    });
    this.meshServer.listen(own, () => this.join());
  }

  // The supervisor connection: join first, then only ready and watchdog; peer and
  // master records come back.
  join() {
    const where = path.join(this.identity.mesh, 'supervisor.sock');
    const socket = net.createConnection(where);
    this.supervisor = socket;
    const reader = new records.RecordReader();
    let connected = false;
    socket.on('connect', () => {
      connected = true;
      if (this.standby) {
        // listen() has been called, so the program is loaded and its server built: the
        // standby is prepared. Slot 0 until the promotion says which.
        socket.write(records.encodeRecord(records.STANDBY, this.id, 0, process.pid));
        socket.write(records.encodeRecord(records.READY, this.id, 0, process.pid));
        this.waiting = true;
      } else {
        this.sendJoin();
      }
      if (this.identity.watchdogUsec) {
        const every = Math.max(1, Math.floor(this.identity.watchdogUsec / 2000));
        this.watchdogTimer = setInterval(() => this.sendRecord(records.WATCHDOG, 0), every);
        this.watchdogTimer.unref();
      }
    });
    socket.on('data', (chunk) => {
      for (const record of reader.push(chunk)) this.onRecord(record);
    });
    socket.on('error', (error) => {
      if (!connected && this.standby) {
        this.emit('error', new Error(`multinode: standby ${this.id} cannot reach the supervisor at ${where} ` +
          `(${error.message}): it cannot wait for a promotion; is multinode run still running?`));
        return;
      }
      if (!connected) {
        process.emitWarning(`multinode: worker ${this.id} cannot reach the supervisor at ${where} (${error.message}): ` +
          'it serves without the mesh', 'MultinodeWarning');
      }
      debug('supervisor connection: %s', error.message);
    });
    socket.on('close', () => {
      this.joined = false;
      this.waiting = false;
      if (this.stopping || !connected) return;
      // End of file: the supervisor is gone (the spec lets the worker stop).
      debug('the supervisor connection closed: stopping');
      this.stop('the supervisor connection closed');
    });
  }

  sendJoin() {
    this.supervisor.write(records.encodeRecord(records.JOIN, this.id, this.slot, process.pid));
    this.joined = true;
    this.sendReady();
  }

  // While waiting as a standby only watchdog records go out, with slot 0.
  sendRecord(type, value) {
    if ((!this.joined && !this.waiting) || this.supervisor.destroyed) return;
    this.supervisor.write(records.encodeRecord(type, this.id, this.slot ?? 0, value));
  }

  sendReady() {
    if (this.readySent || !this.serving || !this.joined) return;
    this.readySent = true;
    this.sendRecord(records.READY, process.pid);
  }

  onRecord(record) {
    if (record.type === records.PROMOTE) {
      this.promote(record);
    } else if (this.waiting) {
      debug('ignored a record of type %d before the promotion', record.type);
    } else if (record.type === records.PEER) {
      this.connect(record.peerId, record.peerSlot);
    } else if (record.type === records.MASTER) {
      if (this.isMaster) return;
      this.isMaster = true;
      this.emit('master');
    } else {
      debug('ignored a record of type %d from the supervisor', record.type);
    }
  }

  // The standby becomes the worker of the slot the record names: it serves on fd 3,
  // joins on this same connection (peer records come back, then ready once the server
  // listens), and from then on is a worker as any other.
  promote(record) {
    if (!this.waiting || this.stopping || record.peerId !== this.id || record.peerSlot === 0 || record.reserved) {
      debug('ignored a promote record (id %d, slot %d): not a standby waiting as %d', record.peerId, record.peerSlot,
        this.id);
      return;
    }
    this.waiting = false;
    this.standby = false;
    this.slot = record.peerSlot;
    const master = record.value === 1n && !this.isMaster;
    if (master) this.isMaster = true;
    this.server.once('listening', () => {
      this.serving = true;
      this.sendReady();
    });
    this.server.listen({ fd: this.listenFds[0].fd });
    this.sendJoin();
    this.emit('promoted', this.slot);
    if (master) this.emit('master');
  }

  // The later joiner connects and writes the hello first.
  connect(peerId, peerSlot) {
    if (this.stopping) return;
    const socket = net.createConnection(path.join(this.identity.mesh, `${peerId}.sock`));
    const failed = (error) => debug('cannot connect to worker %d: %s (skipped)', peerId, error.message);
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      socket.write(records.encodeHello(this.id, this.slot));
      this.deliver(socket, peerId, peerSlot);
    });
  }

  // The earlier joiner accepts; the first 17 bytes must be a hello, within 5 s.
  accept(socket) {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      debug('a mesh connection sent no hello in %d ms: closed', HELLO_TIMEOUT_MS);
      socket.destroy();
    }, HELLO_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
    };
    const onEnd = () => {
      cleanup();
      socket.destroy();
    };
    const onReadable = () => {
      // In paused mode read(n) gives n bytes or nothing (or what is left at the end).
      const bytes = socket.read(records.HELLO_SIZE);
      if (bytes === null) return;
      cleanup();
      const hello = records.decodeHello(bytes);
      if (!hello) {
        debug('a mesh connection did not start with a hello: closed');
        socket.destroy();
        return;
      }
      // Without a 'readable' listener the socket flows again for the user's 'data'
      // listener: Node settles that on the next tick, so the stream goes out after it.
      process.nextTick(() => this.deliver(socket, hello.peerId, hello.peerSlot));
    };
    socket.on('error', (error) => debug('mesh connection: %s', error.message));
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
  }

  deliver(socket, peerId, peerSlot) {
    if (socket.destroyed) return;
    socket.peerId = peerId;
    socket.peerSlot = peerSlot;
    // A peer that dies may reset the connection: its stream closes, the process goes on.
    socket.on('error', (error) => debug('stream to worker %d: %s', peerId, error.message));
    this.streams.add(socket);
    socket.once('close', () => this.streams.delete(socket));
    this.emit('node', socket);
  }

  watchSignals() {
    // The handlers stay for the whole stop: the supervisor signals the worker and its
    // process group, so one stop may bring two SIGTERMs; the stop's bound ends it.
    this.onSignal = (signal) => this.stop(signal);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGINT', this.onSignal);
  }

  // Graceful stop: no new connections, idle keep-alive connections closed (and again
  // as busy ones finish), exit 0 once the server has closed or after stopTimeout.
  stop(reason) {
    if (this.stopping) return;
    this.stopping = true;
    debug('worker %d stops: %s', this.id, reason);
    this.emit('stopping', reason);
    clearInterval(this.watchdogTimer);
    const exit = () => process.exit(0);
    const bound = setTimeout(() => {
      debug('worker %d: connections still open after %d ms: exiting', this.id, this.stopTimeout);
      exit();
    }, this.stopTimeout);
    bound.unref();
    if (this.meshServer) this.meshServer.close();
    if (!this.serving) {
      exit();
      return;
    }
    const closeIdle = () => {
      if (typeof this.server.closeIdleConnections === 'function') this.server.closeIdleConnections();
    };
    this.server.close(exit);
    closeIdle();
    const sweep = setInterval(closeIdle, 100);
    sweep.unref();
  }
}

module.exports = { Worker };

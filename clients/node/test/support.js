'use strict';
// Test helpers: a fake broker (the supervisor's side of the mesh spec, on
// $MULTINODE_MESH/supervisor.sock), worker processes started with the environment of
// `multinode run` workers, bounded waits, HTTP requests.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const records = require('../lib/records');

const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const LISTEN_EXEC = path.join(__dirname, 'fixtures', 'listen_exec.py');

async function waitUntil(predicate, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// The supervisor's side, as the spec says: a worker's first record must be a join
// with the id and slot of a worker started and not joined yet; it gets a peer record
// for every live member that joined before it; the master role goes by env to the
// first worker started while nobody holds it, and by a master record to the oldest
// live joined worker when the holder exits. A standby (expectStandby) says `standby`
// first, then only ready and watchdog with slot 0; after promote() its next record
// must be the join with the promoted slot, and it is a worker from then on.
class Broker {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-mesh-'));
    fs.chmodSync(this.dir, 0o700);
    this.started = new Map();  // id -> { slot, joined, alive, socket, ready, watchdogs }
    this.master = null;  // the id holding the role
    this.handoverPending = false;
    this.refused = 0;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(path.join(this.dir, 'supervisor.sock'), resolve));
  }

  // Called before starting a worker: its record, and whether it gets MULTINODE_MASTER=1.
  expect(id, slot) {
    const member = { id, slot, joined: false, alive: true, socket: null, ready: 0, watchdogs: 0, log: [] };
    this.started.set(id, member);
    if (this.master === null && !this.handoverPending) {
      this.master = id;
      return true;
    }
    return false;
  }

  // Called before starting a standby: no slot, no role.
  expectStandby(id) {
    const member = { id, slot: 0, standby: true, waiting: false, promoted: null, joined: false, alive: true,
      socket: null, ready: 0, watchdogs: 0, log: [] };
    this.started.set(id, member);
    return member;
  }

  // The supervisor's promote record: the role comes with it when nobody holds it.
  promote(id, slot) {
    const member = this.started.get(id);
    const master = this.master === null && !this.handoverPending;
    if (master) this.master = id;
    member.promoted = slot;
    member.socket.write(records.encodeRecord(records.PROMOTE, id, slot, master ? 1 : 0));
    return master;
  }

  // A record of a standby's connection; false when it breaks the spec.
  standbyRecord(member, record) {
    if (member.waiting && member.promoted === null) {
      if ((record.type === records.READY || record.type === records.WATCHDOG) && record.peerId === member.id &&
          record.peerSlot === 0) {
        if (record.type === records.READY) member.ready++;
        else member.watchdogs++;
        return true;
      }
      return false;
    }
    if (member.waiting) {
      // Promoted: the join with the new slot, on the same connection.
      if (record.type !== records.JOIN || record.peerId !== member.id || record.peerSlot !== member.promoted ||
          Number(record.value) !== member.pid) return false;
      member.waiting = false;
      member.slot = member.promoted;
      for (const other of this.started.values()) {
        if (other.joined && other.alive) member.socket.write(records.encodeRecord(records.PEER, other.id, other.slot, 0));
      }
      member.joined = true;
      return true;
    }
    return null;  // a worker now: the usual rules
  }

  accept(socket) {
    const reader = new records.RecordReader();
    let member = null;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      for (const record of reader.push(chunk)) {
        if (member) member.log.push({ type: record.type, slot: record.peerSlot });
        if (!member && record.type === records.STANDBY) {
          const candidate = this.started.get(record.peerId);
          if (record.reserved || !candidate?.standby || !candidate.alive || candidate.socket || record.peerSlot !== 0) {
            this.refused++;
            socket.destroy();
            return;
          }
          member = candidate;
          member.waiting = true;
          member.socket = socket;
          member.pid = Number(record.value);
          member.log.push({ type: record.type, slot: record.peerSlot });
          continue;
        }
        const verdict = member?.standby ? this.standbyRecord(member, record) : null;
        if (verdict === false) {
          this.refused++;
          socket.destroy();
          return;
        }
        if (verdict === true) continue;
        if (!member) {
          const candidate = this.started.get(record.peerId);
          if (record.type !== records.JOIN || record.reserved || !candidate || candidate.standby || !candidate.alive ||
              candidate.joined ||
              candidate.slot !== record.peerSlot) {
            this.refused++;
            socket.destroy();
            return;
          }
          member = candidate;
          for (const other of this.started.values()) {
            if (other.joined && other.alive) socket.write(records.encodeRecord(records.PEER, other.id, other.slot, 0));
          }
          member.joined = true;
          member.socket = socket;
          member.pid = Number(record.value);
          member.log.push({ type: record.type, slot: record.peerSlot });
        } else if (record.type === records.READY && record.peerId === member.id) {
          member.ready++;
        } else if (record.type === records.WATCHDOG && record.peerId === member.id) {
          member.watchdogs++;
        } else {
          this.refused++;
          socket.destroy();
          return;
        }
      }
    });
  }

  // Called when a worker process has exited.
  exited(id) {
    const member = this.started.get(id);
    if (!member) return;
    member.alive = false;
    member.socket?.destroy();
    fs.rmSync(path.join(this.dir, `${id}.sock`), { force: true });
    if (this.master !== id) return;
    this.master = null;
    const heir = [...this.started.values()].filter((m) => m.alive && m.joined).sort((a, b) => a.id - b.id)[0];
    if (heir) {
      this.master = heir.id;
      heir.socket.write(records.encodeRecord(records.MASTER, heir.id, heir.slot, 1));
    }
  }

  close() {
    this.server.close();
    for (const member of this.started.values()) member.socket?.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// A worker process: `listen_exec.py node PROGRAM` with the worker's environment. Its
// stdout's JSON lines are its events; the first line (listen_exec's) is the port.
class WorkerProcess {
  // slot null: a standby (MULTINODE_STANDBY=1, no MULTINODE_SLOT).
  constructor({ id, slot, nodes, mesh, master, program, env = {} }) {
    this.id = id;
    this.events = [];
    this.stderr = '';
    this.exit = null;
    const environment = { ...process.env, MULTINODE_ID: String(id), MULTINODE_SLOT: String(slot), MULTINODE_NODES: String(nodes), ...env };
    if (slot === null) {
      delete environment.MULTINODE_SLOT;
      environment.MULTINODE_STANDBY = '1';
    }
    if (mesh) environment.MULTINODE_MESH = mesh;
    if (master) environment.MULTINODE_MASTER = '1';
    this.child = spawn(PYTHON, [LISTEN_EXEC, process.execPath, program], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.child.pid;
    let pending = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (text) => {
      pending += text;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          const event = JSON.parse(line);
          if (event.port !== undefined && this.port === undefined) this.port = event.port;
          else this.events.push(event);
        } catch {
          this.stderr += `(stdout) ${line}\n`;
        }
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text) => {
      this.stderr += text;
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      resolve(this.exit);
    }));
  }

  has(predicate) {
    return this.events.some(predicate);
  }

  async waitFor(predicate, ms, what) {
    await waitUntil(() => this.has(predicate), ms, `${what} in worker ${this.id}; it said ${JSON.stringify(this.events)} ${this.stderr}`);
  }

  // Stops it if it still runs: SIGKILL, then waits for the exit.
  async kill() {
    if (this.exit === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

function get(port, agent, path = '/') {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (text) => {
        body += text;
      });
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', reject);
  });
}

// A free TCP port on loopback (bound, read, released).
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

module.exports = { Broker, WorkerProcess, waitUntil, get, freePort, PYTHON };

'use strict';
// Warm standbys (`multinode run --standby K`, MULTINODE_STANDBY=1) against the fake
// broker of support.js, which speaks the supervisor's side of the standby contract:
// a standby says `standby` then `ready` (slot 0), beats while it waits, takes no
// connection on fd 3 and joins nobody; the broker's `promote` record gives it a slot,
// and it then serves on fd 3, joins on the same connection with that slot, meets the
// live workers, says ready and beats with the new slot, and gets the master role when
// the record carries it. SIGTERM to a waiting standby exits 0 at once; without
// MULTINODE_MESH a standby refuses to start, saying why.

const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { after, before, test } = require('node:test');

const records = require('../lib/records');
const { Broker, WorkerProcess, waitUntil } = require('./support');

const PROGRAM = path.join(__dirname, 'fixtures', 'mesh_worker.js');
const NODES = 2;
const WAIT = 20000;
const QUIET_MS = 1000;  // how long a request to a waiting standby must stay unanswered
let broker;
const processes = new Map();  // id -> WorkerProcess
let pending = null;  // a request sent to standby 3 before its promotion

function start(id, slot, env) {
  const master = slot === null ? (broker.expectStandby(id), false) : broker.expect(id, slot);
  const worker = new WorkerProcess({ id, slot, nodes: NODES, mesh: broker.dir, master, program: PROGRAM, env });
  worker.exited.then(() => broker.exited(id));
  processes.set(id, worker);
  return worker;
}

const types = (id) => broker.started.get(id).log.map(({ type, slot }) => `${type}:${slot}`);

// A raw HTTP request on a new connection: what comes back, collected until the end.
function request(port) {
  const socket = net.createConnection({ host: '127.0.0.1', port });
  const answer = { text: '', socket };
  socket.setEncoding('utf8');
  socket.on('data', (text) => {
    answer.text += text;
  });
  socket.on('error', () => {});
  answer.ended = new Promise((resolve) => socket.on('close', resolve));
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  return answer;
}

before(async () => {
  broker = new Broker();
  await broker.listen();
});

after(async () => {
  pending?.socket.destroy();
  for (const worker of processes.values()) await worker.kill();
  broker.close();
});

test('a standby says standby then ready with slot 0, beats while it waits, and takes no connection on fd 3', async () => {
  start(1, 1);
  start(2, 2);
  const standby = start(3, null, { WATCHDOG_USEC: '200000' });
  start(4, null);
  for (const id of [1, 2]) await waitUntil(() => broker.started.get(id).ready === 1, WAIT, `ready from ${id}`);
  for (const id of [3, 4]) await waitUntil(() => broker.started.get(id).ready === 1, WAIT, `ready from standby ${id}`);
  await waitUntil(() => broker.started.get(3).watchdogs >= 2, WAIT, 'two watchdog records from the standby');
  const log = types(3);
  assert.deepEqual(log.slice(0, 2), [`${records.STANDBY}:0`, `${records.READY}:0`], 'standby first, then ready');
  assert.ok(log.slice(2).every((entry) => entry === `${records.WATCHDOG}:0`), `only heartbeats while waiting: ${log}`);
  assert.equal(broker.started.get(3).pid, standby.pid, 'the standby record carries the pid');
  assert.deepEqual(types(4), [`${records.STANDBY}:0`, `${records.READY}:0`], 'no heartbeat without WATCHDOG_USEC');

  await standby.waitFor((e) => e.event === 'start', WAIT, 'start');
  const started = standby.events.find((e) => e.event === 'start');
  assert.deepEqual([started.slot, started.standby, started.isMaster], [null, true, false]);
  assert.deepEqual(started.environment, [], 'MULTINODE_STANDBY and the others left the environment');

  // The kernel completes the TCP handshake on the listening socket, but nobody
  // accepts: the request stays unanswered (it is answered after the promotion).
  await waitUntil(() => standby.port, WAIT, 'the port');
  pending = request(standby.port);
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  assert.equal(pending.text, '', 'a waiting standby answers nothing');
  assert.ok(!standby.has((e) => e.event === 'listening' || e.event === 'node'), JSON.stringify(standby.events));
  assert.equal(broker.refused, 0);
});

test('SIGTERM to a waiting standby: exit status 0 at once, and it never joined', async () => {
  const waiting = processes.get(4);
  waiting.child.kill('SIGTERM');
  assert.deepEqual(await waiting.exited, { code: 0, signal: null }, waiting.stderr);
  assert.deepEqual(types(4), [`${records.STANDBY}:0`, `${records.READY}:0`]);
  assert.equal(broker.started.get(4).joined, false);
});

test('promoted into a slot: serves on fd 3, joins with that slot, meets the live worker, ready and beats in the slot', async () => {
  const victim = processes.get(2);
  victim.child.kill('SIGKILL');
  await victim.exited;
  const standby = processes.get(3);
  assert.equal(broker.promote(3, 2), false, 'worker 1 holds the role');
  await standby.waitFor((e) => e.event === 'promoted', WAIT, 'promoted');
  const promoted = standby.events.find((e) => e.event === 'promoted');
  assert.deepEqual(promoted, { event: 'promoted', slot: 2, nodeSlot: 2, standby: false, isMaster: false });
  await standby.waitFor((e) => e.event === 'listening', WAIT, 'listening');

  // The request queued while it waited is answered now.
  let timer;
  await Promise.race([pending.ended, new Promise((resolve) => {
    timer = setTimeout(resolve, WAIT);
  })]).finally(() => clearTimeout(timer));
  assert.match(pending.text, /^HTTP\/1\.1 200/);
  assert.equal(JSON.parse(pending.text.split('\r\n\r\n')[1]).id, 3);

  // Join with the new slot on the same connection, then ready, then heartbeats in slot 2.
  await waitUntil(() => types(3).filter((t) => t === `${records.WATCHDOG}:2`).length >= 2, WAIT, 'heartbeats in slot 2');
  const log = types(3);
  const joinAt = log.indexOf(`${records.JOIN}:2`);
  assert.ok(joinAt > 1, `a join with slot 2: ${log}`);
  assert.ok(log.slice(0, joinAt).every((t) => !t.startsWith(`${records.JOIN}:`)), 'one join');
  assert.ok(log.indexOf(`${records.READY}:2`) > joinAt, `ready in slot 2 after the join: ${log}`);
  assert.ok(log.slice(joinAt + 1).every((t) => t.endsWith(':2')), `every later record in slot 2: ${log}`);
  assert.equal(broker.started.get(3).joined, true);

  // The peer record for worker 1 came back: both ends of the stream, with the slots.
  const first = processes.get(1);
  await first.waitFor((e) => e.event === 'node' && e.peer === 3 && e.slot === 2, WAIT, 'the stream from 3 in slot 2');
  await standby.waitFor((e) => e.event === 'node' && e.peer === 1 && e.slot === 1, WAIT, 'the stream to 1');
  await standby.waitFor((e) => e.event === 'message' && e.peer === 1 && e.kind === 'json', WAIT, 'messages from 1');
  await first.waitFor((e) => e.event === 'message' && e.peer === 3 && e.kind === 'json', WAIT, 'messages from 3');
  assert.ok(!standby.has((e) => e.event === 'master'), 'no role');
  assert.equal(broker.refused, 0);
});

test('promoted with the master role (value 1): isMaster and the \'master\' event', async () => {
  // Nobody holds the role once both workers are gone (the fake hands it to no one
  // that is not joined), so the next promotion carries it.
  for (const id of [3, 1]) {
    processes.get(id).child.kill('SIGKILL');
    await processes.get(id).exited;
  }
  assert.equal(broker.master, null);
  const standby = start(5, null);
  await waitUntil(() => broker.started.get(5).ready === 1, WAIT, 'ready from standby 5');
  assert.equal(broker.promote(5, 1), true);
  await standby.waitFor((e) => e.event === 'master' && e.isMaster, WAIT, 'the master event');
  const promoted = standby.events.find((e) => e.event === 'promoted');
  assert.deepEqual([promoted.slot, promoted.isMaster], [1, true]);
  assert.ok(standby.events.indexOf(promoted) < standby.events.findIndex((e) => e.event === 'master'),
    'promoted comes before master');
  await waitUntil(() => types(5).includes(`${records.READY}:1`), WAIT, 'ready in slot 1');
  standby.child.kill('SIGTERM');
  assert.deepEqual(await standby.exited, { code: 0, signal: null }, standby.stderr);
  assert.ok(standby.has((e) => e.event === 'stopping' && e.reason === 'SIGTERM'));
  assert.equal(broker.refused, 0);
});

test('a standby without MULTINODE_MESH refuses to start and says that --standby needs the mesh', async () => {
  const lonely = new WorkerProcess({ id: 9, slot: null, nodes: 1, mesh: null, master: false, program: PROGRAM });
  processes.set(9, lonely);
  const exit = await lonely.exited;
  assert.notEqual(exit.code, 0);
  assert.match(lonely.stderr, /standby \(MULTINODE_STANDBY=1\) but got no MULTINODE_MESH/);
  assert.match(lonely.stderr, /--standby needs/);
  assert.ok(!lonely.has((e) => e.event === 'start'));
});

'use strict';
// Three real `node` workers with the environment of `multinode run` workers (a
// listening socket at fd 3, MULTINODE_ID/SLOT/NODES/MESH/MASTER, WATCHDOG_USEC) and a
// fake broker on $MULTINODE_MESH/supervisor.sock that speaks the supervisor's side of
// the mesh spec: every pair exchanges text, binary and JSON; isMaster is true in
// exactly one; HTTP is served on fd 3; a worker killed with SIGKILL ends its streams
// at the survivors, the role goes to the oldest survivor, and the replacement's
// streams arrive; a bad hello is refused; SIGTERM and the broker's end stop with 0.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { after, before, test } = require('node:test');

const { Broker, WorkerProcess, get, waitUntil } = require('./support');

const PROGRAM = path.join(__dirname, 'fixtures', 'mesh_worker.js');
const NODES = 3;
const WAIT = 20000;
let broker;
const workers = new Map();  // id -> WorkerProcess, live ones
const everyone = [];

function start(id, slot, env) {
  const master = broker.expect(id, slot);
  const worker = new WorkerProcess({ id, slot, nodes: NODES, mesh: broker.dir, master, program: PROGRAM, env });
  worker.exited.then(() => {
    broker.exited(id);
    workers.delete(id);
  });
  workers.set(id, worker);
  everyone.push(worker);
  return worker;
}

const greeted = (from, to) => (e) => e.event === 'node' && e.peer === from && to !== undefined;
const messagesFrom = (worker, from) => worker.events.filter((e) => e.event === 'message' && e.peer === from);

// Every live worker has a stream to every other and has the three messages it sent.
async function assertMeshComplete() {
  for (const worker of workers.values()) {
    for (const other of workers.values()) {
      if (other === worker) continue;
      await worker.waitFor(greeted(other.id, worker.id), WAIT, `the stream from ${other.id}`);
      await worker.waitFor(() => messagesFrom(worker, other.id).length >= 3, WAIT, `three messages from ${other.id}`);
      const got = messagesFrom(worker, other.id).map(({ kind, value }) => ({ kind, value }));
      const binary = Buffer.from([other.id, 0, 255]).toString('hex');
      assert.deepEqual(got, [
        { kind: 'text', value: `text from ${other.id} ✓` },
        { kind: 'binary', value: binary },
        { kind: 'json', value: { from: other.id, list: [1, 'two', { three: null }] } },
      ], `worker ${worker.id} from ${other.id}`);
    }
  }
}

async function roles() {
  const result = new Map();
  for (const worker of workers.values()) result.set(worker.id, JSON.parse((await get(worker.port)).body));
  return result;
}

before(async () => {
  broker = new Broker();
  await broker.listen();
});

after(async () => {
  for (const worker of everyone) await worker.kill();
  broker.close();
});

test('three workers join: every pair exchanges text, binary and JSON, in both directions', async () => {
  start(1, 1);
  start(2, 2, { WATCHDOG_USEC: '200000' });
  start(3, 3);
  for (const worker of workers.values()) {
    await worker.waitFor((e) => e.event === 'listening', WAIT, 'listening');
    await worker.waitFor((e) => e.event === 'start', WAIT, 'start');
    assert.deepEqual(worker.events.find((e) => e.event === 'start').environment, [], 'the worker variables left the environment');
  }
  await assertMeshComplete();
  for (const worker of workers.values()) {
    const streams = worker.events.filter((e) => e.event === 'node');
    assert.equal(streams.length, NODES - 1, `worker ${worker.id} has one stream per peer`);
    for (const stream of streams) assert.equal(stream.slot, stream.peer, 'the peer slot comes with the stream');
  }
  assert.equal(broker.refused, 0);
});

test('each worker says ready once it serves, and the watchdog beats when WATCHDOG_USEC is set', async () => {
  for (const worker of workers.values()) {
    const member = broker.started.get(worker.id);
    await waitUntil(() => member.ready === 1, WAIT, `ready from ${worker.id}`);
    assert.equal(member.pid, worker.pid, 'the join carries the pid');
  }
  const beating = broker.started.get(2);
  await waitUntil(() => beating.watchdogs >= 3, WAIT, 'three watchdog records from worker 2');
  assert.equal(broker.started.get(1).watchdogs, 0, 'no heartbeat without WATCHDOG_USEC');
});


test('HTTP is served on fd 3 and isMaster is true in exactly one worker: the one started with MULTINODE_MASTER=1', async () => {
  const answers = await roles();
  assert.equal(answers.size, NODES);
  for (const [id, answer] of answers) assert.equal(answer.id, id);
  assert.deepEqual([...answers.values()].filter((a) => a.isMaster).map((a) => a.id), [1]);
});

test('a worker killed with SIGKILL: its streams end at the survivors, the role goes to the oldest, the replacement is meshed', async () => {
  const victim = workers.get(1);
  victim.child.kill('SIGKILL');
  await victim.exited;
  for (const survivor of workers.values()) {
    await survivor.waitFor((e) => e.event === 'close' && e.peer === 1, WAIT, 'the end of the stream from 1');
    const closed = survivor.events.find((e) => e.event === 'close' && e.peer === 1);
    assert.equal(closed.error, 'peer_gone');
  }
  await workers.get(2).waitFor((e) => e.event === 'master' && e.isMaster, WAIT, 'the master role');
  assert.ok(!workers.get(3).has((e) => e.event === 'master'));
  const replacement = start(4, 1);
  assert.equal(broker.master, 2, 'the replacement does not get MULTINODE_MASTER');
  await replacement.waitFor((e) => e.event === 'listening', WAIT, 'listening');
  await assertMeshComplete();
  const answers = await roles();
  assert.deepEqual([...answers.values()].filter((a) => a.isMaster).map((a) => a.id), [2]);
  assert.equal(broker.refused, 0);
});

test('a connection to a worker\'s mesh socket that does not start with a hello is closed and never delivered', async () => {
  const target = workers.get(3);
  const socket = net.createConnection(path.join(broker.dir, '3.sock'));
  socket.on('error', () => {});
  const ended = new Promise((resolve) => socket.on('close', resolve));
  socket.write(Buffer.alloc(17, 0x41));
  let timer;
  const bound = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('not closed within 10 s')), 10000);
  });
  await Promise.race([ended, bound]).finally(() => clearTimeout(timer));
  assert.equal(target.events.filter((e) => e.event === 'node').length, 3, 'no stream for the bad connection');
});

test('SIGTERM, twice as from the supervisor: the request in flight is answered, the idle keep-alive connection closed, status 0', async () => {
  const target = workers.get(3);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await get(target.port, agent)).status, 200);
  const slow = get(target.port, false, '/slow');
  await target.waitFor((e) => e.event === 'request', WAIT, 'the slow request');
  target.child.kill('SIGTERM');
  await target.waitFor((e) => e.event === 'stopping', WAIT, 'stopping');
  // `multinode run` signals the worker and its process group: a second SIGTERM.
  target.child.kill('SIGTERM');
  const answer = await slow;
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).id, 3);
  assert.deepEqual(await target.exited, { code: 0, signal: null }, target.stderr);
  assert.ok(target.has((e) => e.event === 'stopping' && e.reason === 'SIGTERM'));
  agent.destroy();
  for (const survivor of workers.values()) {
    await survivor.waitFor((e) => e.event === 'close' && e.peer === 3, WAIT, 'the end of the stream from 3');
  }
});

test('the end of the supervisor connection stops a worker with status 0', async () => {
  const target = workers.get(4);
  broker.started.get(4).socket.destroy();
  assert.deepEqual(await target.exited, { code: 0, signal: null }, target.stderr);
  assert.ok(target.has((e) => e.event === 'stopping' && e.reason === 'the supervisor connection closed'));
});

test('with no broker at $MULTINODE_MESH/supervisor.sock a worker warns, serves without the mesh, and stops with 0', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-nobroker-'));
  const lonely = new WorkerProcess({ id: 9, slot: 1, nodes: 1, mesh: empty, master: true, program: PROGRAM });
  everyone.push(lonely);
  try {
    await waitUntil(() => /cannot reach the supervisor/.test(lonely.stderr), WAIT, `the warning; it said ${lonely.stderr}`);
    await waitUntil(() => lonely.port, WAIT, 'the port');
    const answer = JSON.parse((await get(lonely.port)).body);
    assert.deepEqual([answer.id, answer.isMaster], [9, true]);
    lonely.child.kill('SIGTERM');
    assert.deepEqual(await lonely.exited, { code: 0, signal: null }, lonely.stderr);
  } finally {
    await lonely.kill();
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

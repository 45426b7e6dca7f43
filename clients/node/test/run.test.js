'use strict';
// Three Node.js workers under the real `multinode run` (MULTINODE_COMMAND, set by
// ctest): when its supervisor brokers the mesh (MULTINODE_MESH reaches the workers),
// every pair exchanges text, binary and JSON, isMaster is true in exactly one, a worker
// killed with SIGKILL ends its streams at the survivors, the oldest survivor gets the
// role and the replacement is meshed; with --ready notify and a heartbeat timeout
// they are ready and kept alive by their records; SIGTERM to the command stops it
// all with 0.
// Skipped with a reason when the command is not built or has no mesh.

const assert = require('node:assert/strict');
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const { freePort, waitUntil } = require('./support');

const PROGRAM = path.join(__dirname, 'fixtures', 'mesh_worker.js');
const BUILT = path.resolve(__dirname, '..', '..', '..', 'build', 'release', 'bin', 'multinode');
const COMMAND = process.env.MULTINODE_COMMAND || (fs.existsSync(BUILT) ? BUILT : null);
const WAIT = 30000;
const HEARTBEAT_MS = 1000;
let meshAvailable = null;  // found out by the first test: does this command broker the mesh?
const LINE = /^\[worker (\d+) slot (\d+) pid (\d+)\] (\{.*\})$/;

function run(args) {
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-run-'));
  const child = spawn(COMMAND, ['run', '--control', path.join(runtime, 'control.sock'), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const supervisor = { child, runtime, events: [], output: '' };
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => {
    pending += text;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      const match = LINE.exec(line);
      if (match) supervisor.events.push({ worker: Number(match[1]), pid: Number(match[3]), ...JSON.parse(match[4]) });
      else supervisor.output += `${line}\n`;
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    supervisor.output += text;
  });
  supervisor.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return supervisor;
}

// Whatever the test's outcome: the supervisor gone (SIGKILL if still running) and its directory.
async function cleanUp(supervisor) {
  if (supervisor.child.exitCode === null && supervisor.child.signalCode === null) supervisor.child.kill('SIGKILL');
  await supervisor.exited;
  fs.rmSync(supervisor.runtime, { recursive: true, force: true });
}

function statusOf(supervisor) {
  return new Promise((resolve, reject) => {
    execFile(COMMAND, ['status', '--json', '--control', path.join(supervisor.runtime, 'control.sock')], { timeout: 5000 },
      (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout))));
  });
}

test('three Node.js workers under multinode run mesh, hand over the master role and stop with 0',
  { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async (t) => {
    const port = await freePort();
    // --ready notify and a heartbeat timeout: the workers must send the ready and
    // watchdog records (Node.js cannot send NOTIFY_SOCKET datagrams) or be replaced.
    const supervisor = run(['-n', '3', '-p', String(port), '--host', '127.0.0.1', '--ready', 'notify',
      '--heartbeat-timeout', String(HEARTBEAT_MS), '--', process.execPath, PROGRAM]);
    const events = supervisor.events;
    const of = (worker, predicate) => events.filter((e) => e.worker === worker && predicate(e));
    try {
      await waitUntil(() => events.filter((e) => e.event === 'start').length >= 3, WAIT, `three workers; it said ${supervisor.output}`);
      const starts = events.filter((e) => e.event === 'start');
      meshAvailable = starts.every((e) => e.mesh);
      if (!meshAvailable) {
        t.skip('this multinode gives its workers no MULTINODE_MESH (its run has no mesh broker)');
        return;
      }
      const ids = starts.map((e) => e.worker);
      assert.deepEqual(starts.filter((e) => e.isMaster).length, 1, 'exactly one master at the start');
      const complete = (members) => members.every((a) => members.every((b) => a === b ||
        of(a, (e) => e.event === 'message' && e.peer === b).length >= 3));
      await waitUntil(() => complete(ids), WAIT, `every pair's three messages; events ${JSON.stringify(events)}`);
      for (const a of ids) {
        for (const b of ids) {
          if (a === b) continue;
          const got = of(a, (e) => e.event === 'message' && e.peer === b).map(({ kind, value }) => ({ kind, value }));
          assert.deepEqual(got, [
            { kind: 'text', value: `text from ${b} ✓` },
            { kind: 'binary', value: Buffer.from([b, 0, 255]).toString('hex') },
            { kind: 'json', value: { from: b, list: [1, 'two', { three: null }] } },
          ]);
        }
      }
      // Ready through the record, and alive past several heartbeat timeouts.
      const status = await waitUntil(async () => {
        const now = await statusOf(supervisor);
        return now.workers.every((w) => w.state === 'ready' && w.uptime_s * 1000 > 3 * HEARTBEAT_MS) && now;
      }, WAIT, 'every worker ready for three heartbeat timeouts');
      assert.deepEqual(status.workers.map((w) => [w.id, w.restarts]).sort(), ids.map((id) => [id, 0]).sort(), 'nobody replaced');
      const master = starts.find((e) => e.isMaster);
      process.kill(master.pid, 'SIGKILL');
      const survivors = ids.filter((id) => id !== master.worker);
      const heir = Math.min(...survivors);
      await waitUntil(() => survivors.every((id) => of(id, (e) => e.event === 'close' && e.peer === master.worker).length === 1),
        WAIT, 'the end of the master\'s streams');
      for (const id of survivors) assert.equal(of(id, (e) => e.event === 'close' && e.peer === master.worker)[0].error, 'peer_gone');
      await waitUntil(() => of(heir, (e) => e.event === 'master').length === 1, WAIT, `the role at worker ${heir}`);
      const replacement = await waitUntil(() => events.find((e) => e.event === 'start' && !ids.includes(e.worker)), WAIT, 'the replacement');
      assert.equal(replacement.isMaster, false, 'the replacement does not take the role');
      const members = [...survivors, replacement.worker];
      await waitUntil(() => complete(members), WAIT, `the replacement meshed; events ${JSON.stringify(events)}`);
      assert.equal(events.filter((e) => e.event === 'master').length, 1, 'one handover');
      supervisor.child.kill('SIGTERM');
      assert.deepEqual(await supervisor.exited, { code: 0, signal: null }, supervisor.output);
      for (const id of members) assert.equal(of(id, (e) => e.event === 'stopping').length, 1, `worker ${id} stopped gracefully`);
    } finally {
      await cleanUp(supervisor);
    }
  });

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples', 'run');

function request(port, urlPath) {
  return require('./support').get(port, false, urlPath).catch(() => null);
}

test('examples/run/http.js and mesh.js serve under multinode run; with the mesh, a line said on one process is heard by another',
  { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async () => {
    for (const example of ['http.js', 'mesh.js']) {
      const port = await freePort();
      const supervisor = run(['-n', '2', '-p', String(port), '--host', '127.0.0.1', '--', process.execPath, path.join(EXAMPLES, example)]);
      try {
        const first = await waitUntil(() => request(port, '/'), WAIT, `an answer from ${example}; it said ${supervisor.output}`);
        assert.equal(first.status, 200);
        if (example === 'http.js') {
          assert.match(first.body, /^Hello from process [12]( \(the master\))?\n$/);
        } else {
          assert.match(first.body, /^process [12] heard:\n/);
          if (meshAvailable) {
            // Told to the other process once it has its stream.
            await waitUntil(async () => {
              const answer = await request(port, '/say?text=hello%20mesh');
              return answer && /told 1 other/.test(answer.body);
            }, WAIT, 'a /say told to the other process');
            await waitUntil(async () => {
              const answer = await request(port, '/');
              return answer && /heard:\n\d: hello mesh/.test(answer.body);
            }, WAIT, 'the line heard by the other process');
          } else {
            const answer = await request(port, '/say?text=x');
            assert.match(answer.body, /told 0 other/, 'without the mesh, nobody to tell');
          }
        }
        supervisor.child.kill('SIGTERM');
        assert.deepEqual(await supervisor.exited, { code: 0, signal: null }, supervisor.output);
      } finally {
        await cleanUp(supervisor);
      }
    }
  });

test('under multinode run --standby 1 a waiting Node.js standby fills a killed worker\'s slot by its promote record and meshes',
  { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async (t) => {
    const port = await freePort();
    const supervisor = run(['-n', '2', '--standby', '1', '-p', String(port), '--host', '127.0.0.1', '--ready', 'notify',
      '--heartbeat-timeout', String(HEARTBEAT_MS), '--', process.execPath, PROGRAM]);
    const events = supervisor.events;
    const of = (worker, predicate) => events.filter((e) => e.worker === worker && predicate(e));
    try {
      await waitUntil(() => events.filter((e) => e.event === 'start').length >= 3, WAIT, `two workers and a standby; it said ${supervisor.output}`);
      if (!events.every((e) => e.event !== 'start' || e.mesh)) {
        t.skip('this multinode gives its workers no MULTINODE_MESH');
        return;
      }
      const standby = events.find((e) => e.event === 'start' && e.standby);
      assert.ok(standby, `a standby started; events ${JSON.stringify(events)}`);
      assert.equal(standby.slot, null, 'no slot before the promotion');
      assert.ok(!standby.environment.includes('MULTINODE_SLOT'));
      const workers = events.filter((e) => e.event === 'start' && !e.standby).map((e) => e.worker);
      assert.equal(workers.length, 2);
      // Waiting, alive past several heartbeat timeouts (its watchdog records), serving nothing.
      await waitUntil(async () => {
        const now = await statusOf(supervisor);
        const entry = (now.standby ?? [])[0];
        return entry && entry.id === standby.worker && entry.state === 'waiting' && entry.uptime_s * 1000 > 3 * HEARTBEAT_MS;
      }, WAIT, `the standby waiting for three heartbeat timeouts; it said ${supervisor.output}`);
      assert.equal(of(standby.worker, (e) => e.event === 'listening' || e.event === 'node').length, 0, 'nothing before the promotion');

      const victim = events.find((e) => e.event === 'start' && e.worker === workers[0]);
      process.kill(victim.pid, 'SIGKILL');
      const survivor = workers[1];
      const promoted = await waitUntil(() => of(standby.worker, (e) => e.event === 'promoted')[0], WAIT,
        `the standby promoted; it said ${supervisor.output}`);
      assert.equal(promoted.slot, victim.slot);
      assert.equal(promoted.nodeSlot, victim.slot);
      assert.equal(promoted.standby, false);
      assert.match(supervisor.output, new RegExp(`standby ${standby.worker} \\(pid ${standby.pid}\\) fills slot ${victim.slot} \\(promote record\\)`));
      await waitUntil(() => of(standby.worker, (e) => e.event === 'listening').length === 1, WAIT, 'the promoted standby listening');
      const heard = (a, b) => of(a, (e) => e.event === 'message' && e.peer === b).length >= 3;
      await waitUntil(() => heard(standby.worker, survivor) && heard(survivor, standby.worker), WAIT,
        `the promoted standby meshed with the survivor; events ${JSON.stringify(events)}`);
      assert.deepEqual(of(survivor, (e) => e.event === 'node' && e.peer === standby.worker).map((e) => e.slot), [victim.slot]);
      // Serving: its answers come (the survivor's too; a few tries find it).
      const answered = await waitUntil(async () => {
        const answer = await request(port, '/');
        return answer && JSON.parse(answer.body).pid === standby.pid;
      }, WAIT, 'an answer from the promoted standby');
      assert.ok(answered);
      // Another standby takes its place.
      await waitUntil(() => events.find((e) => e.event === 'start' && e.standby && e.worker !== standby.worker), WAIT,
        'a new standby');
      supervisor.child.kill('SIGTERM');
      assert.deepEqual(await supervisor.exited, { code: 0, signal: null }, supervisor.output);
    } finally {
      await cleanUp(supervisor);
    }
  });

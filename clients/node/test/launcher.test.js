'use strict';
// `node app.js` with no MULTINODE_ID: the original's options become `multinode run`'s
// flags; a missing command is a clear error; and, with the command built
// (MULTINODE_COMMAND, set by ctest), the app started as `node app.js` serves HTTP from
// its workers (never from the launcher), SIGHUP is forwarded (a rolling restart: new
// worker ids) and SIGTERM stops everything with status 0; SIGTTIN and SIGTTOU add and
// remove a worker, and Ctrl-C (SIGINT to the launcher's process group) reaches the
// command once: a graceful stop, every worker exiting with 0.

const assert = require('node:assert/strict');
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const { commandArguments, findCommand } = require('../lib/launcher');
const { freePort, get, waitUntil } = require('./support');

const APP = path.join(__dirname, 'fixtures', 'http_app.js');
const BUILT = path.resolve(__dirname, '..', '..', '..', 'build', 'release', 'bin', 'multinode');
const COMMAND = process.env.MULTINODE_COMMAND || (fs.existsSync(BUILT) ? BUILT : null);

test('the original\'s options map to the flags of multinode run', () => {
  const program = ['/usr/bin/node', 'app.js', '--flag'];
  assert.deepEqual(commandArguments({ port: 8080, nodes: 4 }, program), ['run', '--stop-with-parent', '-n', '4', '-p', '8080', '--ready', 'notify', '--', ...program]);
  assert.deepEqual(commandArguments({}, program), ['run', '--stop-with-parent', '-n', '1', '-p', '80', '--ready', 'notify', '--', ...program], 'the original\'s defaults');
  assert.deepEqual(commandArguments({ port: 0, nodes: 2, host: '127.0.0.1', restartChildren: false, masterListen: false }, program),
    ['run', '--stop-with-parent', '-n', '2', '-p', '0', '--host', '127.0.0.1', '--no-restart', '--ready', 'notify', '--', ...program]);
  assert.deepEqual(commandArguments({ port: 1, nodes: 1, restartChildren: true, masterListen: true, runArgs: ['--ready', 'started'] }, program),
    ['run', '--stop-with-parent', '-n', '1', '-p', '1', '--ready', 'started', '--', ...program]);
  const own = commandArguments({ port: 1 });
  assert.deepEqual(own.slice(own.indexOf('--') + 1), [process.execPath, ...process.execArgv, ...process.argv.slice(1)]);
  assert.throws(() => commandArguments({ nodes: 0 }, program), RangeError);
  assert.throws(() => commandArguments({ port: 70000 }, program), RangeError);
});

test('the command is found on PATH or named by MULTINODE_COMMAND, and its absence says what to install', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-path-'));
  try {
    assert.throws(() => findCommand({}, { PATH: dir }), /`multinode` command was not found on PATH.*Install it.*MULTINODE_COMMAND/s);
    const fake = path.join(dir, 'multinode');
    fs.writeFileSync(fake, '#!/bin/sh\n', { mode: 0o644 });
    assert.throws(() => findCommand({}, { PATH: dir }), /not found on PATH/, 'not executable');
    fs.chmodSync(fake, 0o755);
    assert.equal(findCommand({}, { PATH: `/nonexistent:${dir}` }), fake);
    assert.equal(findCommand({}, { PATH: '', MULTINODE_COMMAND: fake }), fake);
    assert.throws(() => findCommand({}, { PATH: dir, MULTINODE_COMMAND: path.join(dir, 'missing') }), /MULTINODE_COMMAND\) is not an executable/);
    assert.equal(findCommand({ command: fake }, { PATH: '' }), fake);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function startApp(env, detached = false) {
  const child = spawn(process.execPath, [APP], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached });
  const app = { child, stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => {
    app.stdout += text;
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    app.stderr += text;
  });
  app.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return app;
}

// `node app.js` with the built command, its control socket in a runtime directory of
// its own and a free port (detached: in a process group of its own).
async function launchApp(detached = false) {
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-launch-'));
  const port = await freePort();
  const app = startApp({ MULTINODE_COMMAND: COMMAND, XDG_RUNTIME_DIR: runtime, TEST_PORT: String(port) }, detached);
  return { runtime, port, app };
}

// The launcher's first line: {"launcher": its pid, "supervisor": the command's pid}.
function launcherLine(app) {
  return waitUntil(() => {
    const line = app.stdout.split('\n').find((l) => l.startsWith('{"launcher"'));
    return line && JSON.parse(line);
  }, 20000, 'the launcher line');
}

// True while pid runs: a zombie has ended too (whoever reaps an orphan may be slow to).
function running(pid) {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// True while pid is a running multinode command (not a pid reused since).
function supervisorLeft(pid) {
  try {
    return running(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('multinode');
  } catch {
    return false;
  }
}

// Whatever the test's outcome: the supervisor is in a session of its own, so it is
// stopped by its pid if still there (its workers die with it), then the launcher,
// then the runtime directory goes.
async function cleanUp(app, launch, runtime) {
  if (app.child.exitCode === null && app.child.signalCode === null) {
    if (launch) {
      try {
        process.kill(launch.supervisor, 'SIGKILL');
      } catch {}
    }
    app.child.kill('SIGKILL');
  } else if (launch && supervisorLeft(launch.supervisor)) {
    process.kill(launch.supervisor, 'SIGKILL');  // the launcher is gone, its command was left behind
  }
  await app.exited;
  fs.rmSync(runtime, { recursive: true, force: true });
}

test('without the command, `node app.js` fails and says what to install', async () => {
  const app = startApp({ PATH: '/nonexistent', MULTINODE_COMMAND: '', TEST_PORT: '1' });
  const exit = await app.exited;
  assert.notEqual(exit.code, 0);
  assert.match(app.stderr, /`multinode` command was not found on PATH/);
});

test('`node app.js` starts multinode run: the workers serve, SIGHUP is forwarded, SIGTERM stops with 0', { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async () => {
  const { runtime, port, app } = await launchApp();
  let launch = null;
  try {
    launch = await launcherLine(app);
    assert.equal(launch.launcher, app.child.pid);
    const answer = async () => {
      try {
        const response = await get(port, false);
        return response.status === 200 && JSON.parse(response.body);
      } catch {
        return null;
      }
    };
    const ids = new Set();
    const deadline = Date.now() + 30000;
    while (ids.size === 0 && Date.now() < deadline) {
      const body = await answer();
      if (body) {
        assert.notEqual(body.pid, app.child.pid, 'the launcher serves nothing');
        assert.notEqual(body.pid, launch.supervisor, 'nor does the supervisor');
        assert.ok(body.id >= 1 && body.id <= 2, `a first worker's id: ${body.id}`);
        ids.add(body.id);
      } else {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.ok(ids.size > 0, `no answer on port ${port}; it said ${app.stdout} ${app.stderr}`);
    // SIGHUP to the launcher reaches the supervisor: a rolling restart, new workers.
    app.child.kill('SIGHUP');
    let restarted = null;
    const hupDeadline = Date.now() + 30000;
    while (!restarted && Date.now() < hupDeadline) {
      const body = await answer();
      if (body && body.id > 2) restarted = body;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(restarted, `no answer from a restarted worker; it said ${app.stdout} ${app.stderr}`);
    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, `${app.stdout}\n${app.stderr}`);
    await waitUntil(() => {
      try {
        process.kill(launch.supervisor, 0);
        return false;
      } catch {
        return true;
      }
    }, 10000, 'the supervisor to be gone');
  } finally {
    await cleanUp(app, launch, runtime);
  }
});

function statusOf(runtime) {
  return new Promise((resolve, reject) => {
    execFile(COMMAND, ['status', '--json', '--control', path.join(runtime, 'multinode.sock')], { timeout: 5000 },
      (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout))));
  });
}

test('SIGTTIN and SIGTTOU to the launcher scale, Ctrl-C reaches the command once: every worker exits with 0', { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async () => {
  // A process group of its own, as a shell's foreground job: Ctrl-C signals the group.
  const { runtime, app } = await launchApp(true);
  let launch = null;
  const workers = async (count) => waitUntil(async () => {
    try {
      const status = await statusOf(runtime);
      return status.workers.length === count && status.workers.every((w) => w.state === 'ready') && status;
    } catch {
      return false;
    }
  }, 30000, `${count} ready workers; it said ${app.stdout} ${app.stderr}`);
  try {
    launch = await launcherLine(app);
    // Each step waits for the workers to serve: with --ready started, a worker counts as
    // ready at its exec, before Node.js has loaded the program and taken SIGTERM.
    const serving = (id) => waitUntil(() => app.stdout.includes(`{"listening":${id}}`), 30000, `worker ${id} serving`);
    await workers(2);
    await serving(1);
    await serving(2);
    app.child.kill('SIGTTIN');
    await workers(3);
    await serving(3);
    app.child.kill('SIGTTOU');
    await workers(2);
    process.kill(-app.child.pid, 'SIGINT');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, `${app.stdout}\n${app.stderr}`);
    const output = `${app.stdout}\n${app.stderr}`;
    assert.match(output, /stopping gracefully: SIGINT/);
    assert.doesNotMatch(output, /killed by/, 'no worker was killed: the stop was graceful');
    assert.equal(output.match(/exited with status 0/g)?.length, 3, 'three workers in all (two, then one more, removed again), each exited with 0');
  } finally {
    await cleanUp(app, launch, runtime);
  }
});

test('a launcher killed with SIGKILL takes the command with it: the supervisor stops gracefully and its workers go', { skip: COMMAND ? false : 'the multinode command is not built (set MULTINODE_COMMAND)' }, async () => {
  const { runtime, app } = await launchApp();
  let launch = null;
  try {
    launch = await launcherLine(app);
    const status = await waitUntil(async () => {
      try {
        const now = await statusOf(runtime);
        return now.workers.length > 0 && now.workers.every((w) => w.state === 'ready') && now;
      } catch {
        return false;
      }
    }, 30000, `ready workers; it said ${app.stdout} ${app.stderr}`);
    const pids = status.workers.map((w) => w.pid);
    app.child.kill('SIGKILL');
    await app.exited;
    await waitUntil(() => !running(launch.supervisor) && pids.every((pid) => !running(pid)), 15000,
      'the supervisor and its workers gone after the launcher\'s SIGKILL');
  } finally {
    await cleanUp(app, launch, runtime);
  }
});

// What the chat's Node.js tests share: starting examples/chat on a free loopback
// port (in its own process group, every process of which is killed at the end),
// and a WebSocket client that keeps every message it got. Every wait is bounded.
import { spawn } from "node:child_process";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export const program = process.env.CHAT_PROGRAM;
export const outputDir = process.env.CHAT_OUTPUT_DIR ?? ".";
if (!program) throw new Error("CHAT_PROGRAM is not set: run this test through ctest (tests/chat/CMakeLists.txt)");

// The npm packages come from the repository's lockfile.
export async function requirePackage(name) {
  try {
    return await import(name);
  } catch (error) {
    throw new Error(`cannot load the npm package '${name}' (${error.message}): ` +
                    "run scripts/bootstrap.sh test (npm ci) in the repository first");
  }
}

// A loopback port that was free a moment ago.
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Polls `condition` until it returns something truthy, up to `timeout` ms.
export async function waitUntil(condition, timeout, what) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

// The promise's value, or null after `timeout` ms (the timer is cleared either way,
// so that nothing keeps the test's process alive once it is done).
export async function within(promise, timeout) {
  let timer;
  const expired = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeout); });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function count(haystack, needle) {
  let n = 0;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + needle.length)) ++n;
  return n;
}

export class Chat {
  // Starts the chat with `nodes` processes and waits until every worker is ready.
  static async start(nodes, extraArgs = []) {
    const port = await freePort();
    const chat = new Chat(port, nodes, extraArgs);
    await chat.waitForReady(nodes - 1);
    return chat;
  }

  constructor(port, nodes, extraArgs) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}/`;
    this.stderr = "";
    this.child = spawn(program, ["--port", String(port), "--nodes", String(nodes), "--host", "127.0.0.1", ...extraArgs],
                       { detached: true, stdio: ["ignore", "ignore", "pipe"] });
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (data) => { this.stderr += data; });
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
    // Whatever happens to the test, nothing it started outlives it.
    this.killOnExit = () => { try { process.kill(-this.child.pid, "SIGKILL"); } catch {} };
    process.on("exit", this.killOnExit);
  }

  get pid() { return this.child.pid; }

  // Waits until stderr says "is ready" `workers` times in all.
  async waitForReady(workers, timeout = 20000) {
    await waitUntil(() => count(this.stderr, "is ready") >= workers, timeout,
                    `${workers} workers ready; the chat said:\n${this.stderr}`);
  }
  readyCount() { return count(this.stderr, "is ready"); }

  // A graceful stop (SIGTERM to the master), then SIGKILL to the whole group if it hangs.
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      process.kill(this.child.pid, "SIGTERM");
      const stopped = await within(this.exited, 15000);
      if (!stopped) this.killOnExit();
    }
    this.killOnExit();  // workers too, should any have been left behind
    process.off("exit", this.killOnExit);
    return this.exited;
  }
}

// A WebSocket client of the chat that keeps every message (parsed) in order.
export class Client {
  static async open(WebSocket, port) {
    const client = new Client(new WebSocket(`ws://127.0.0.1:${port}/ws`));
    client.welcome = await client.waitFor((m) => m.type === "welcome", 10000, "the welcome");
    if (client.messages[0] !== client.welcome) throw new Error("the first message was not the welcome");
    return client;
  }

  constructor(socket) {
    this.socket = socket;
    this.messages = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => {
        this.closeEvent = { code, reason: reason.toString() };
        resolve(this.closeEvent);
        this.wake();
      });
    });
    socket.on("error", () => {});  // reported through close
    socket.on("message", (data, isBinary) => {
      this.messages.push(isBinary ? { type: "binary" } : JSON.parse(data.toString()));
      this.wake();
    });
  }

  get node() { return this.welcome.node; }
  get pid() { return this.welcome.pid; }
  get open() { return this.closeEvent === undefined; }

  wake() {
    for (const check of [...this.waiters]) check();
  }

  // The index the next message will get: pass it to waitFor to look only at later ones.
  mark() { return this.messages.length; }

  // The first message from index `from` on that satisfies `predicate`.
  waitFor(predicate, timeout = 10000, what = "a message", from = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.messages.length; ++i) {
          if (predicate(this.messages[i])) {
            done();
            return resolve(this.messages[i]);
          }
        }
        if (!this.open) {
          done();
          reject(new Error(`closed (${this.closeEvent.code}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what} on a client of node ${this.welcome?.node}; ` +
                         `got ${JSON.stringify(this.messages.slice(from)).slice(0, 2000)}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  async closedWithin(timeout = 10000) {
    return within(this.closed, timeout);
  }

  send(message) { this.socket.send(typeof message === "string" ? message : JSON.stringify(message)); }
  close() { if (this.open) this.socket.close(); }
}

// Opens clients until there is one on each of `wanted` distinct processes (or
// on each process in `nodes` when given); the others are closed. Returns them by node.
export async function clientsOnDistinctNodes(WebSocket, port, wanted, { attempts = 300, accept } = {}) {
  const byNode = new Map();
  for (let attempt = 0; attempt < attempts && byNode.size < wanted; ++attempt) {
    const client = await Client.open(WebSocket, port);
    if (!byNode.has(client.node) && (!accept || accept(client))) {
      byNode.set(client.node, client);
    } else {
      client.close();
      await client.closedWithin(5000);
    }
  }
  if (byNode.size < wanted) {
    throw new Error(`clients reached only ${byNode.size} distinct processes (${[...byNode.keys()]}) ` +
                    `of ${wanted} in ${attempts} connections`);
  }
  return byNode;
}

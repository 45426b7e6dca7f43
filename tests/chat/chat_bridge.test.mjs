// examples/chat across two hosts (--bridge): two chat servers, each a master with
// its own processes and port, joined by one real redis-server (Debian's) on a
// free loopback port. A line said on a tab of host A appears on tabs of both of
// host B's processes; the online list and a later tab's history cover both hosts;
// a server that stops leaves the other's online list. Run by ctest (tests/chat/CMakeLists.txt).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, before, test } from "node:test";

import { Chat, Client, clientsOnDistinctNodes, freePort, requirePackage, waitUntil } from "./chat_support.mjs";

const { WebSocket } = await requirePackage("ws");
const redisServer = process.env.CHAT_REDIS_SERVER ?? "/usr/bin/redis-server";
let redis;
let redisExited;
let a;
let b;
const clients = [];

async function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("connect", () => { socket.destroy(); resolve(true); });
    socket.on("error", () => resolve(false));
  });
}

before(async () => {
  const port = await freePort();
  redis = spawn(redisServer, ["--save", "", "--appendonly", "no", "--port", String(port), "--bind", "127.0.0.1"],
                { stdio: "ignore" });
  redisExited = new Promise((resolve) => redis.on("exit", resolve));
  process.on("exit", () => { try { redis.kill("SIGKILL"); } catch {} });
  await waitUntil(() => canConnect(port), 10000, "redis-server to listen");
  const bridge = ["--bridge", `redis://127.0.0.1:${port}`, "--bridge-prefix", `chat-test-${process.pid}:`,
                  "--presence-ms", "200"];
  a = await Chat.start(2, bridge);
  b = await Chat.start(2, bridge);
  await waitUntil(() => (a.stderr.match(/connected to Redis/g) ?? []).length >= 2 &&
                        (b.stderr.match(/connected to Redis/g) ?? []).length >= 2, 10000,
                  `both hosts' bridges up; A said:\n${a.stderr}\nB said:\n${b.stderr}`);
});

after(async () => {
  for (const client of clients) client.close();
  const exits = [await a?.stop(), await b?.stop()];
  redis?.kill("SIGTERM");
  await redisExited;
  for (const exit of exits) assert.deepEqual(exit, { code: 0, signal: null });
  assert.doesNotMatch((a?.stderr ?? "") + (b?.stderr ?? ""), /Sanitizer|runtime error:/);
});

test("a line said on host A reaches both processes of host B, and the online list covers both hosts", async () => {
  const onB = await clientsOnDistinctNodes(WebSocket, b.port, 2);
  const onA = await Client.open(WebSocket, a.port);
  clients.push(onA, ...onB.values());
  onA.send({ type: "nick", name: "alice" });
  for (const client of onB.values()) {
    await client.waitFor((m) => m.type === "online" && m.users.includes("alice"), 10000, "alice online on host B");
  }
  onA.send({ type: "say", text: "hello from host A" });
  for (const client of onB.values()) {
    const line = await client.waitFor((m) => m.type === "message" && m.text === "hello from host A", 10000,
                                      "host A's line on host B");
    assert.equal(line.from, "alice");
    assert.match(line.host, /^[0-9a-f]{16}$/);
  }
  const [first] = onB.values();
  first.send({ type: "nick", name: "bob" });
  await onA.waitFor((m) => m.type === "online" && m.users.includes("bob") && m.users.includes("alice"), 10000,
                    "bob (host B) online on host A");
  first.send({ type: "say", text: "hello from host B" });
  await onA.waitFor((m) => m.type === "message" && m.text === "hello from host B" && m.from === "bob", 10000,
                    "host B's line on host A");
  // Said once, shown once: no copy through the mesh and the bridge both.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(onA.messages.filter((m) => m.type === "message" && m.text === "hello from host B").length, 1);
  for (const client of onB.values()) {
    assert.equal(client.messages.filter((m) => m.type === "message" && m.text === "hello from host A").length, 1);
  }
});

test("a later tab on either host has the history of both", async () => {
  for (const chat of [a, b]) {
    const late = await Client.open(WebSocket, chat.port);
    clients.push(late);
    const texts = late.welcome.history.map((line) => line.text);
    assert.ok(texts.includes("hello from host A") && texts.includes("hello from host B"), JSON.stringify(texts));
    // Guests are named with their host: no two hosts' guests share a name.
    assert.match(late.welcome.online.find((u) => u.startsWith("guest-")) ?? "", /^guest-[0-9a-f]{4}-\d+-\d+$/);
  }
});

test("a host that stops leaves the other host's online list", async () => {
  const watcher = await Client.open(WebSocket, a.port);
  clients.push(watcher);
  await watcher.waitFor((m) => (m.type === "welcome" ? m.online : m.users ?? []).includes("bob"), 10000, "bob listed");
  const exit = await b.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await watcher.waitFor((m) => m.type === "online" && !m.users.includes("bob"), 10000, "bob gone from host A's list");
});

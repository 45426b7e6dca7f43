// examples/chat's WebSocket protocol against the real program with three processes,
// through the ws client from the lockfile: the welcome, nick and say across
// processes, the online list, the history of a later join, bad input closing only
// the client that sent it, and a worker killed with SIGKILL whose replacement gets
// the state back from its peers. Run by ctest (tests/chat/CMakeLists.txt).
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";

import { Chat, Client, clientsOnDistinctNodes, requirePackage, waitUntil } from "./chat_support.mjs";

const { WebSocket } = await requirePackage("ws");
const nodes = 3;
// The bystanders speak after every test: a rate of 50 a second lets them; a flood of
// ten bursts at once is far over it however the machine schedules the test.
const limits = { maxMessage: 4096, maxNick: 32, maxText: 1000, burst: 10, rate: 50 };
let chat;
let bystanders;  // one client on each process, kept open through every test

before(async () => {
  chat = await Chat.start(nodes, ["--max-message", String(limits.maxMessage), "--max-nick", String(limits.maxNick),
                                  "--max-text", String(limits.maxText), "--burst", String(limits.burst), "--rate", String(limits.rate)]);
  bystanders = await clientsOnDistinctNodes(WebSocket, chat.port, nodes);
});

after(async () => {
  for (const client of bystanders?.values() ?? []) client.close();
  const exit = await chat?.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `the chat's graceful stop; it said:\n${chat?.stderr}`);
  // Under the asan preset: no process reported an error, a leak or undefined behaviour.
  assert.doesNotMatch(chat?.stderr ?? "", /Sanitizer|runtime error:/);
});

const isLine = (from, text) => (m) => m.type === "message" && m.from === from && m.text === text;
const onlineWith = (predicate) => (m) => m.type === "online" && predicate(m.users);

test("the welcome comes first and names the process: node, pid, history, online", () => {
  const pids = new Set();
  for (const [node, client] of bystanders) {
    const { welcome } = client;
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.node, node);
    assert.ok(Number.isInteger(welcome.pid) && welcome.pid > 0);
    assert.ok(Array.isArray(welcome.history));
    assert.ok(Array.isArray(welcome.online));
    assert.ok(welcome.online.some((user) => user.startsWith(`guest-${node}-`)), JSON.stringify(welcome.online));
    pids.add(welcome.pid);
    if (node === 0) assert.equal(welcome.pid, chat.pid, "node 0 is the master");
  }
  assert.equal(pids.size, nodes, "every process has its own pid");
});

test("a nick and a line said on one process reach every client of every process", async () => {
  const [speaker, ...listeners] = [...bystanders.values()];
  speaker.send({ type: "nick", name: "alice" });
  for (const client of bystanders.values()) {
    await client.waitFor(onlineWith((users) => users.includes("alice")), 10000, "alice in the online list");
  }
  speaker.send({ type: "say", text: "hello from alice ✓" });
  for (const client of [speaker, ...listeners]) {
    const line = await client.waitFor(isLine("alice", "hello from alice ✓"), 10000, "alice's line");
    assert.equal(line.node, speaker.node, "the line names the process it was said on");
  }
  // A second speaker on another process, heard by the first.
  listeners[0].send({ type: "nick", name: "bob" });
  listeners[0].send({ type: "say", text: "bob here" });
  const heard = await speaker.waitFor(isLine("bob", "bob here"), 10000, "bob's line");
  assert.equal(heard.node, listeners[0].node);
});

test("the online list is everyone on every process; one who leaves leaves it everywhere", async () => {
  const visitor = await Client.open(WebSocket, chat.port);
  visitor.send({ type: "nick", name: "visitor" });
  const marks = new Map([...bystanders].map(([node, client]) => [node, client.mark()]));
  for (const client of bystanders.values()) {
    const online = await client.waitFor(onlineWith((users) => users.includes("visitor")), 10000, "the visitor");
    assert.ok(online.users.includes("alice") && online.users.includes("bob"), JSON.stringify(online.users));
  }
  for (const [node, client] of bystanders) marks.set(node, client.mark());
  visitor.close();
  for (const [node, client] of bystanders) {
    await client.waitFor(onlineWith((users) => !users.includes("visitor")), 10000, "the visitor gone", marks.get(node));
  }
});

test("a client that joins later, on any process, gets the history", async () => {
  const late = await clientsOnDistinctNodes(WebSocket, chat.port, nodes);
  for (const [node, client] of late) {
    const texts = client.welcome.history.map((line) => `${line.from}: ${line.text}`);
    assert.deepEqual(texts.slice(-2), ["alice: hello from alice ✓", "bob: bob here"], `node ${node}`);
    assert.ok(client.welcome.online.includes("alice"), JSON.stringify(client.welcome.online));
    client.close();
  }
});

// Each bad client is closed with its code; every bystander, whatever its process, stays and still hears.
const badInputs = [
  ["not JSON", 1008, (c) => c.send("hello?")],
  ["an unknown type", 1008, (c) => c.send({ type: "shout", text: "x" })],
  ["a say without text", 1008, (c) => c.send({ type: "say" })],
  ["a nick over --max-nick", 1008, (c) => c.send({ type: "nick", name: "n".repeat(limits.maxNick + 1) })],
  ["a text over --max-text", 1008, (c) => c.send({ type: "say", text: "t".repeat(limits.maxText + 1) })],
  ["a frame over --max-message", 1009, (c) => c.send("x".repeat(limits.maxMessage + 1))],
  ["a binary frame", 1003, (c) => c.socket.send(Buffer.from('{"type":"say","text":"x"}'), { binary: true })],
  ["text that is not UTF-8", 1007, (c) => c.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })],
  ["a flood", 1008, (c) => { for (let i = 0; i < limits.burst * 10; ++i) c.send({ type: "say", text: `flood ${i}` }); }],
];
for (const [what, code, misbehave] of badInputs) {
  test(`${what} closes that client (${code}) and no other`, async () => {
    const bad = await Client.open(WebSocket, chat.port);
    misbehave(bad);
    const closed = await bad.closedWithin(10000);
    assert.ok(closed, `the client that sent ${what} was not closed`);
    assert.equal(closed.code, code, `closed with ${closed.code} (${closed.reason})`);
    for (const client of bystanders.values()) assert.ok(client.open, `a bystander on node ${client.node} closed`);
    const [speaker] = [...bystanders.values()];
    const text = `still here after ${what}`;
    speaker.send({ type: "say", text });
    for (const client of bystanders.values()) await client.waitFor(isLine("alice", text), 10000, text);
  });
}

// A raw WebSocket connection after a real handshake, for what the ws client would
// never do: frames that break RFC 6455, or not reading at all.
async function rawUpgrade(port) {
  const socket = net.connect(port, "127.0.0.1");
  const raw = { socket, received: Buffer.alloc(0) };
  raw.onData = (data) => { raw.received = Buffer.concat([raw.received, data]); };
  socket.on("data", raw.onData);
  raw.ended = new Promise((resolve) => socket.on("close", () => resolve(true)));
  socket.on("error", () => {});
  socket.write("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  await waitUntil(() => raw.received.indexOf("\r\n\r\n") >= 0, 10000, "the 101");
  raw.headEnd = raw.received.indexOf("\r\n\r\n") + 4;
  assert.match(raw.received.subarray(0, raw.headEnd).toString(), /^HTTP\/1\.1 101 /);
  return raw;
}

// A client's text frame: masked, as RFC 6455 wants (payloads under 64 kB).
function maskedText(text) {
  const payload = Buffer.from(text);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length])
                                    : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]))]);
}

async function rawFrameCloseCode(frame) {
  const raw = await rawUpgrade(chat.port);
  raw.socket.write(frame);
  // The welcome comes first: skip whole frames (server frames are unmasked) up to the close frame.
  const closeFrame = await waitUntil(() => {
    const { received } = raw;
    for (let at = raw.headEnd; at + 2 <= received.length;) {
      let length = received[at + 1] & 0x7f, header = 2;
      if (length === 126) { length = received.readUInt16BE(at + 2); header = 4; }
      if (at + header + length > received.length) return null;
      if ((received[at] & 0x0f) === 0x8) return received.subarray(at + header, at + header + length);
      at += header + length;
    }
    return null;
  }, 10000, "a close frame");
  raw.socket.destroy();
  await raw.ended;
  return closeFrame.readUInt16BE(0);
}

test("a frame that breaks RFC 6455 closes that client (1002) and no other", async () => {
  const hi = Buffer.from("hi");
  // Unmasked (a client must mask), then a reserved bit set with no extension agreed.
  assert.equal(await rawFrameCloseCode(Buffer.concat([Buffer.from([0x81, 0x02]), hi])), 1002);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(hi.map((byte, i) => byte ^ mask[i % 4]));
  assert.equal(await rawFrameCloseCode(Buffer.concat([Buffer.from([0xc1, 0x82]), mask, masked])), 1002);
  for (const client of bystanders.values()) assert.ok(client.open, `a bystander on node ${client.node} closed`);
});

test("a worker killed with SIGKILL is replaced, and the replacement has the history from its peers", async () => {
  const victim = [...bystanders.values()].find((client) => client.node !== 0);
  const survivors = [...bystanders.values()].filter((client) => client !== victim);
  const survivorNames = survivors.map((client) => `survivor-${client.node}`);
  survivors.forEach((client, i) => client.send({ type: "nick", name: survivorNames[i] }));
  victim.send({ type: "nick", name: "doomed" });
  const everyone = (u) => u.includes("doomed") && survivorNames.every((name) => u.includes(name));
  for (const client of survivors) await client.waitFor(onlineWith(everyone), 10000, "doomed and the survivors");
  const marks = survivors.map((client) => client.mark());
  const ready = chat.readyCount();
  process.kill(victim.pid, "SIGKILL");
  assert.ok(await victim.closedWithin(10000), "the killed worker's client was not closed");
  bystanders.delete(victim.node);
  // Its users leave with its stream...
  await Promise.all(survivors.map((client, i) =>
    client.waitFor(onlineWith((u) => !u.includes("doomed")), 10000, "doomed gone", marks[i])));
  // ...and its replacement (a new id, the same slot) gets the state back.
  await chat.waitForReady(ready + 1);
  const known = new Set([...bystanders.keys(), victim.node]);
  const fresh = await clientsOnDistinctNodes(WebSocket, chat.port, 1, { accept: (c) => !known.has(c.node) });
  const [newcomer] = fresh.values();
  assert.ok(newcomer.node > victim.node, `the replacement has a new id (${newcomer.node} after ${victim.node})`);
  assert.notEqual(newcomer.pid, victim.pid);
  const texts = newcomer.welcome.history.map((line) => `${line.from}: ${line.text}`);
  assert.ok(texts.includes("alice: hello from alice ✓") && texts.includes("bob: bob here"), JSON.stringify(texts));
  for (const name of survivorNames) assert.ok(newcomer.welcome.online.includes(name), JSON.stringify(newcomer.welcome));
  assert.ok(!newcomer.welcome.online.includes("doomed"), JSON.stringify(newcomer.welcome.online));
  // And it is part of the room: what is said there reaches the others and back.
  newcomer.send({ type: "nick", name: "phoenix" });
  newcomer.send({ type: "say", text: "back from the dead" });
  for (const client of survivors) await client.waitFor(isLine("phoenix", "back from the dead"), 10000, "phoenix");
  survivors[0].send({ type: "say", text: "welcome back" });
  await newcomer.waitFor(isLine(survivorNames[0], "welcome back"), 10000, "a line from a survivor");
  newcomer.close();
  await waitUntil(() => !newcomer.open, 5000, "the newcomer closed");
});

test("the history keeps the last 100 lines, in the order they were said, on every process", async () => {
  const busy = await Chat.start(2, ["--rate", "1000", "--burst", "1000"]);
  try {
    const speakers = [...(await clientsOnDistinctNodes(WebSocket, busy.port, 2)).values()];
    speakers.forEach((client, i) => client.send({ type: "nick", name: `speaker${i}` }));
    // Each line is heard back before the next is said, so the order is the one they were said in.
    for (let i = 0; i < 105; ++i) {
      const speaker = speakers[i % 2];
      const before = speaker.mark();
      speaker.send({ type: "say", text: `line ${i}` });
      await speaker.waitFor(isLine(`speaker${i % 2}`, `line ${i}`), 10000, `line ${i}`, before);
      await speakers[(i + 1) % 2].waitFor(isLine(`speaker${i % 2}`, `line ${i}`), 10000, `line ${i} on the other`);
    }
    const late = await clientsOnDistinctNodes(WebSocket, busy.port, 2);
    const expected = Array.from({ length: 100 }, (_, k) => `speaker${(k + 5) % 2}: line ${k + 5}`);
    for (const [node, client] of late) {
      assert.deepEqual(client.welcome.history.map((line) => `${line.from}: ${line.text}`), expected, `node ${node}`);
      client.close();
    }
    for (const client of speakers) client.close();
  } finally {
    const exit = await busy.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `the busy chat's graceful stop; it said:\n${busy.stderr}`);
  }
});

test("a client that reads nothing is closed once --max-buffered bytes wait for it; the room goes on", async () => {
  const busy = await Chat.start(2, ["--max-buffered", "262144", "--max-text", "60000", "--max-message", "65536",
                                    "--rate", "1000", "--burst", "1000"]);
  try {
    const speaker = await Client.open(WebSocket, busy.port);
    speaker.send({ type: "nick", name: "speaker" });
    const sleeper = await rawUpgrade(busy.port);
    sleeper.socket.write(maskedText(JSON.stringify({ type: "nick", name: "sleeper" })));
    await speaker.waitFor(onlineWith((u) => u.includes("sleeper") && u.includes("speaker")), 10000, "both online");
    // It reads nothing from now on: the kernel's buffers fill, then the server's queue.
    sleeper.socket.off("data", sleeper.onData);
    sleeper.socket.pause();
    const mark = speaker.mark();
    const dropped = onlineWith((users) => !users.includes("sleeper"));
    const line = "z".repeat(50000);
    let said = 0;
    // One line at a time, each read back by the speaker before the next, so that only
    // the sleeper falls behind; 20 MB at most.
    let gone = false;
    for (let scanned = mark; said < 400 && !gone;) {
      const before = speaker.mark();
      speaker.send({ type: "say", text: line });
      ++said;
      await speaker.waitFor(isLine("speaker", line), 10000, `the speaker's line ${said} back`, before);
      for (; scanned < speaker.messages.length; ++scanned) gone ||= dropped(speaker.messages[scanned]);
    }
    assert.ok(gone, `the sleeper was still online after ${said} lines of 50 kB`);
    assert.ok(speaker.open);
    speaker.send({ type: "say", text: "still talking" });
    await speaker.waitFor(isLine("speaker", "still talking"), 10000, "the speaker's line");
    sleeper.socket.destroy();
    speaker.close();
  } finally {
    const exit = await busy.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `the busy chat's graceful stop; it said:\n${busy.stderr}`);
  }
});

test("a graceful stop (SIGTERM to the master) closes every client of every process with 1001", async () => {
  const clients = await clientsOnDistinctNodes(WebSocket, chat.port, nodes);
  const exit = await chat.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `the chat's graceful stop; it said:\n${chat.stderr}`);
  for (const [node, client] of clients) {
    const closed = await client.closedWithin(5000);
    assert.equal(closed?.code, 1001, `the client of node ${node}: ${JSON.stringify(closed)}`);
  }
});

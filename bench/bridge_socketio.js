// One process of bench/bridge.sh's socket.io peer: a socket.io server with
// @socket.io/redis-adapter on the same redis-server as multinode's bridge.
// Messages go from server to server with io.serverSideEmit, which the adapter
// publishes on Redis pub/sub and every other server relays: the same path as a
// cross-host broadcast. Each receiving process prints the line bench/bridge.cpp does:
//   result <id> <messages> <first_ns> <last_ns> <p50_us> <p99_us>
//   node bench/bridge_socketio.js --redis PORT --id N [--publish --rate R --seconds S --size B]
"use strict";
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const port = Number(option("--redis"));
const id = option("--id", "0");
const publish = args.includes("--publish");
const rate = Number(option("--rate", "0"));
const seconds = Number(option("--seconds", "2"));
const size = Math.max(8, Number(option("--size", "64")));

async function main() {
  const pub = createClient({ url: `redis://127.0.0.1:${port}` });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server();
  io.adapter(createAdapter(pub, sub, { key: `bench-${process.ppid}` }));
  const latencies = [];
  let first = 0n;
  let last = 0n;
  let done = false;
  io.on("bench", (stamp) => {
    if (done) return;
    const now = process.hrtime.bigint();  // CLOCK_MONOTONIC, as bench/bridge.cpp's
    if (first === 0n) first = now;
    last = now;
    latencies.push(Number((now - BigInt(stamp)) / 1000n));
  });
  io.on("end", () => {
    if (done) return;
    done = true;
    latencies.sort((a, b) => a - b);
    const at = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0);
    process.stdout.write(`result ${id} ${latencies.length} ${first} ${last} ${at(0.5)} ${at(0.99)}\n`);
  });
  process.on("SIGTERM", () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
  });
  if (!publish) return;
  await new Promise((resolve) => setTimeout(resolve, 1000));  // the others' subscriptions
  const padding = "x".repeat(Math.max(0, size - 20));
  const start = process.hrtime.bigint();
  let sent = 0;
  const tick = () => {
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed >= seconds) return finish(0);
    const due = rate > 0 ? Math.floor(elapsed * rate) : sent + 256;
    for (; sent < due; ++sent) io.serverSideEmit("bench", String(process.hrtime.bigint()), padding);
    // Without a rate: as fast as the client's queue drains (setImmediate lets its writes go out).
    if (rate > 0) setTimeout(tick, 0); else setImmediate(tick);
  };
  const finish = (round) => {
    if (round === 0) process.stderr.write(`socket.io: published ${sent}\n`);
    if (round === 5) return;
    io.serverSideEmit("end");
    setTimeout(() => finish(round + 1), 200);
  };
  tick();
}

main().catch((error) => {
  process.stderr.write(`bridge_socketio: ${error.stack}\n`);
  process.exit(1);
});

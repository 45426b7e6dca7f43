// Node's cluster IPC, the peer bench/ipc.sh compares multinode with: the
// primary forks one worker; one-way throughput of process.send() JSON messages
// from the worker to the primary, then round-trip latency (the primary sends a
// message, the worker sends it back). Prints one JSON line, like bench/ipc.
//
//   node bench/ipc_node_cluster.js [--messages N] [--round-trips N]
'use strict';
const cluster = require('node:cluster');

const args = process.argv.slice(2);
function option(name, fallback) {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isInteger(value) || value < 2) {
    console.error(`ipc_node_cluster.js: ${name} wants a whole number >= 2`);
    process.exit(2);
  }
  return value;
}
const messages = option('--messages', 300000);
const roundTrips = option('--round-trips', 20000);
const warmup = 100;
// The same small object bench/ipc sends as its JSON frames.
const tick = (seq) => ({type: 'tick', seq, ok: true, tags: ['a', 'b']});

if (cluster.isPrimary) {
  const worker = cluster.fork();
  const result = {kind: 'ipc', impl: 'node-cluster', json_messages: messages, round_trips: roundTrips};
  let phase = 'one-way', count = 0, first = 0n, sentAt = 0n;
  const samples = [];
  const giveUp = setTimeout(() => {
    console.error('ipc_node_cluster.js: no result after 5 minutes');
    process.exit(1);
  }, 300000);

  worker.on('message', (message) => {
    const now = process.hrtime.bigint();
    if (phase === 'one-way') {
      if (message.seq !== count) throw new Error(`message ${message.seq} arrived as number ${count}`);
      if (++count === 1) first = now;
      if (count === messages) {
        result.json_msgs_per_s = (count - 1) / (Number(now - first) / 1e9);
        phase = 'round-trip';
        count = 0;
        sentAt = process.hrtime.bigint();
        worker.send(tick(0));
      }
      return;
    }
    if (count++ >= warmup) samples.push(Number(now - sentAt) / 1000);
    if (count < roundTrips + warmup) {
      sentAt = process.hrtime.bigint();
      worker.send(tick(count));
      return;
    }
    samples.sort((a, b) => a - b);
    const middle = samples.length >> 1;
    result.rtt_us_median = samples.length % 2 ? samples[middle] : (samples[middle - 1] + samples[middle]) / 2;
    result.rtt_us_mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    console.log(JSON.stringify(result));
    clearTimeout(giveUp);
    worker.kill();
  });
  worker.on('online', () => worker.send({phase: 'one-way', count: messages}));
} else {
  process.on('message', (message) => {
    if (message.phase !== 'one-way') {
      process.send(message);  // a round-trip ping
      return;
    }
    // Batches of 1000, the next one once the last message of a batch was handed
    // to the channel: Node's queue never grows without bound, the pipe stays busy.
    let seq = 0;
    const batch = () => {
      for (let i = 0; i < 1000 && seq < message.count; ++i) {
        const last = i === 999 || seq === message.count - 1;
        process.send(tick(seq++), last ? batch : undefined);
      }
    };
    batch();
  });
}

// Node's ws (npm, the repository's lockfile) against websocket_echo: text, binary,
// a message in fragments, a large message, ping/pong, a protocol error, the close.
// With "deflate" (websocket_echo --deflate), all of it with permessage-deflate on
// both sides (ws compresses every message: threshold 0), and the errors that only
// compression has (RSV1 on a control frame, a zip bomb past max_message_bytes).
//   node node_client.js PORT [deflate]   prints "ok" and exits 0, or exits 1 with what failed
'use strict';
const zlib = require('zlib');
const WebSocket = require('ws');
const port = Number(process.argv[2]);
const deflate = process.argv[3] === 'deflate';
const url = `ws://127.0.0.1:${port}/`;

function fail(what) {
  console.error(`node client: ${what}`);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 20000).unref();

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold: 0 } : false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

// A masked client frame (mask key 0) with the given first byte.
function rawFrame(first, payload) {
  let header;
  if (payload.length < 126) {
    header = Buffer.from([first, 0x80 | payload.length]);
  } else if (payload.length <= 0xffff) {
    header = Buffer.from([first, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, Buffer.alloc(4), payload]);
}

async function closesWith(bytes, expected, what) {
  const ws = await open();
  const closed = new Promise((resolve) => ws.once('close', (c) => resolve(c)));
  ws._socket.write(bytes);
  const code = await closed;
  if (code !== expected) fail(`${what} closed with ${code}, not ${expected}`);
}

async function main() {
  const ws = await open();
  const agreed = ws.extensions.includes('permessage-deflate');
  if (agreed !== deflate) fail(`permessage-deflate agreed: ${agreed} (extensions "${ws.extensions}")`);
  ws.send('hello from node');
  let m = await next(ws);
  if (m.isBinary || m.data.toString() !== 'hello from node') fail(`text echo: ${m.data}`);
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  ws.send(bytes);
  m = await next(ws);
  if (!m.isBinary || !m.data.equals(bytes)) fail('binary echo');
  // One text message in three fragments, split inside a code point.
  const text = Buffer.from('caf\u00e9 \u{1F600}', 'utf8');
  ws.send(text.subarray(0, 4), { binary: false, fin: false });
  ws.send(text.subarray(4, 8), { fin: false });
  ws.send(text.subarray(8), { fin: true });
  m = await next(ws);
  if (m.isBinary || !m.data.equals(text)) fail(`fragmented echo: ${m.data}`);
  const large = Buffer.alloc(500000, 7);
  const readBefore = ws._socket.bytesRead;
  ws.send(large);
  m = await next(ws);
  if (!m.isBinary || !m.data.equals(large)) fail('large echo');
  // Compressed by the server too: far fewer bytes came than the message holds.
  const read = ws._socket.bytesRead - readBefore;
  if (deflate && read > 50000) fail(`the large echo took ${read} bytes: not compressed`);
  if (!deflate && read < large.length) fail(`the large echo took ${read} bytes`);
  await new Promise((resolve) => {
    ws.once('pong', (payload) => {
      if (payload.toString() !== 'are you there') fail('pong payload');
      resolve();
    });
    ws.ping('are you there');
  });
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000, 'bye');
  const code = await closed;
  if (code !== 1000) fail(`close code ${code}`);

  // Invalid UTF-8 in a text frame, sent in raw bytes: the server fails with 1007.
  const bad = await open();
  const badClosed = new Promise((resolve) => bad.once('close', (c) => resolve(c)));
  bad._socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc0, 0xaf]));
  const badCode = await badClosed;
  if (badCode !== 1007) fail(`invalid UTF-8 closed with ${badCode}`);
  if (deflate) {
    await closesWith(rawFrame(0xc9, Buffer.alloc(0)), 1002, 'a ping with RSV1');
    // 4 MiB of zeros in about 4 KiB: past the server's 1 MiB once inflated.
    const bomb = zlib.deflateRawSync(Buffer.alloc(4 << 20), { flush: zlib.constants.Z_SYNC_FLUSH });
    await closesWith(rawFrame(0xc2, bomb.subarray(0, bomb.length - 4)), 1009, 'a zip bomb');
    await closesWith(rawFrame(0xc1, Buffer.from([0xff, 0xff, 0xff])), 1007, 'bad deflate data');
  }
  console.log('ok');
}
main().catch((e) => fail(e.stack || String(e)));

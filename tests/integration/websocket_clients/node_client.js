// Node's ws (npm, the repository's lockfile) against websocket_echo: text, binary,
// a message in fragments, a large message, ping/pong, a protocol error, the close.
//   node node_client.js PORT      prints "ok" and exits 0, or exits 1 with what failed
'use strict';
const WebSocket = require('ws');
const port = Number(process.argv[2]);
const url = `ws://127.0.0.1:${port}/`;

function fail(what) {
  console.error(`node client: ${what}`);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 20000).unref();

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

async function main() {
  const ws = await open();
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
  ws.send(large);
  m = await next(ws);
  if (!m.isBinary || !m.data.equals(large)) fail('large echo');
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
  console.log('ok');
}
main().catch((e) => fail(e.stack || String(e)));

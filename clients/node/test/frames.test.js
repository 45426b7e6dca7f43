'use strict';
// The frame codec against docs/protocol.md: its examples byte for byte, every bad frame
// with its close code (and the order of the header checks), input split at every byte
// boundary, the encoder's refusals, and a framed stream on a real unix socket closing
// normally, on a bad frame (the close frame with the right code, then the end), and on
// the peer's end.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const { FrameDecoder, encodeFrame, encodeClose, encodeMessage, frameStream } = require('../lib/frames');

const hex = (text) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const header = (type, length, reserved = [0, 0, 0]) => {
  const h = Buffer.alloc(8);
  h[0] = type;
  h[1] = reserved[0];
  h[2] = reserved[1];
  h[3] = reserved[2];
  h.writeUInt32LE(length, 4);
  return h;
};
const frame = (type, payload) => Buffer.concat([header(type, payload.length), Buffer.from(payload)]);
const decodeAll = (bytes, options) => new FrameDecoder(options).push(bytes);
const errorOf = (bytes, options) => {
  const events = decodeAll(bytes, options);
  const last = events.at(-1);
  assert.equal(last?.type, 'error', `expected a frame error, got ${JSON.stringify(events)}`);
  return last;
};

test('the examples of docs/protocol.md decode and encode byte for byte', () => {
  assert.deepEqual(decodeAll(hex('01000000 02000000 6869')), [{ type: 'message', frameType: 1, value: 'hi' }]);
  assert.deepEqual(encodeMessage('hi'), hex('01000000 02000000 6869'));
  assert.deepEqual(decodeAll(hex('03000000 07000000 7b2261223a317d')), [{ type: 'message', frameType: 3, value: { a: 1 } }]);
  assert.deepEqual(encodeMessage({ a: 1 }), hex('03000000 07000000 7b2261223a317d'));
  const bytes = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
  const binary = Buffer.concat([hex('02000000 40000000'), bytes]);
  assert.deepEqual(decodeAll(binary), [{ type: 'message', frameType: 2, value: bytes }]);
  assert.deepEqual(encodeMessage(bytes), binary);
  assert.deepEqual(encodeClose(0), hex('04000000 03000000 010000'));
  assert.deepEqual(encodeClose(4, 'bad UTF-8'), hex('04000000 0c000000 010400 6261642055544638'.replace('55544638', '5554462d38')));
  assert.deepEqual(decodeAll(hex('04000000 03000000 010000')), [{ type: 'close', code: 0, reason: '' }]);
  assert.deepEqual(decodeAll(encodeClose(4, 'bad UTF-8')), [{ type: 'close', code: 4, reason: 'bad UTF-8' }]);
});

test('empty text and binary payloads are messages; NUL is text; a byte-order mark is kept', () => {
  assert.deepEqual(decodeAll(header(1, 0)), [{ type: 'message', frameType: 1, value: '' }]);
  assert.deepEqual(decodeAll(header(2, 0)), [{ type: 'message', frameType: 2, value: Buffer.alloc(0) }]);
  assert.deepEqual(decodeAll(frame(1, hex('610062'))), [{ type: 'message', frameType: 1, value: 'a\u0000b' }]);
  assert.deepEqual(decodeAll(frame(1, hex('efbbbf 41'))), [{ type: 'message', frameType: 1, value: '\ufeffA' }]);
  assert.deepEqual(encodeMessage('\ufeffA'), frame(1, hex('efbbbf 41')));
  // Four-byte sequences up to U+10FFFF, and whitespace around a JSON text.
  assert.deepEqual(decodeAll(frame(1, hex('f48fbfbf f09f9880'))), [{ type: 'message', frameType: 1, value: '\u{10ffff}\u{1f600}' }]);
  assert.deepEqual(decodeAll(frame(3, Buffer.from(' \t\r\n[1, "\\ud83d\\ude00", null] \n'))),
    [{ type: 'message', frameType: 3, value: [1, '\u{1f600}', null] }]);
});

test('reserved header bytes that are not zero: bad_frame_header, close code 3', () => {
  for (const reserved of [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0xff, 0xff, 0xff]]) {
    const error = errorOf(header(1, 2, reserved));
    assert.equal(error.error, 'bad_frame_header');
    assert.equal(error.code, 3);
  }
});

test('an unknown frame type: bad_frame_type, close code 2', () => {
  for (const type of [0, 5, 6, 0x80, 0xff]) {
    const error = errorOf(header(type, 0));
    assert.equal(error.error, 'bad_frame_type');
    assert.equal(error.code, 2);
  }
});

test('a control frame longer than 128 bytes: bad_control_frame, close code 6, before the size check', () => {
  assert.deepEqual(decodeAll(frame(4, Buffer.alloc(128, 0x7f))), [{ type: 'control', opcode: 0x7f, payload: Buffer.alloc(128, 0x7f) }]);
  const error = errorOf(header(4, 129), { maxFrameSize: 100 });
  assert.equal(error.error, 'bad_control_frame');
  assert.equal(error.code, 6);
});

test('a frame above the maximum frame size: frame_too_large, close code 1, known from the header alone', () => {
  const defaultError = errorOf(header(2, 16 * 1024 * 1024 + 1));
  assert.equal(defaultError.error, 'frame_too_large');
  assert.equal(defaultError.code, 1);
  assert.deepEqual(decodeAll(header(2, 16 * 1024 * 1024)), [], 'the maximum itself waits for its payload');
  assert.equal(errorOf(header(1, 17), { maxFrameSize: 16 }).code, 1);
  assert.equal(errorOf(header(3, 0xffffffff)).code, 1);
  assert.deepEqual(decodeAll(frame(1, 'x'.repeat(16)), { maxFrameSize: 16 }), [{ type: 'message', frameType: 1, value: 'x'.repeat(16) }]);
  assert.throws(() => new FrameDecoder({ maxFrameSize: 2 ** 32 }), RangeError);
});

test('the header checks run in the spec\'s order: reserved, type, control length, size', () => {
  assert.equal(errorOf(header(9, 0xffffffff, [1, 0, 0])).code, 3);
  assert.equal(errorOf(header(9, 0xffffffff)).code, 2);
  assert.equal(errorOf(header(4, 0xffffffff), { maxFrameSize: 16 }).code, 6);
});

test('text that is not UTF-8: invalid_utf8, close code 4', () => {
  const bad = {
    'overlong NUL': 'c080',
    'overlong slash': 'e080af',
    'overlong four-byte': 'f08282ac',
    'UTF-16 high surrogate': 'eda080',
    'UTF-16 low surrogate': 'edbfbf',
    'above U+10FFFF': 'f4908080',
    'F5 lead byte': 'f5808080',
    'lone continuation byte': '80',
    'cut short': 'e282',
    'cut short at the end': '41e2',
    'FE byte': 'fe',
  };
  for (const [name, bytes] of Object.entries(bad)) {
    const error = errorOf(frame(1, hex(bytes)));
    assert.equal(error.error, 'invalid_utf8', name);
    assert.equal(error.code, 4, name);
  }
});

test('JSON that does not parse, nests too deep or is not UTF-8: invalid_json, close code 5', () => {
  const bad = {
    empty: '',
    blank: '  ',
    'cut short': '{"a":',
    'trailing comma': '[1,2,]',
    'trailing comma in an object': '{"a":1,}',
    comment: '[1 /* c */]',
    'line comment': '// c\n1',
    'two values': '1 2',
    'single quotes': "{'a':1}",
    'bare word': 'undefined',
    NaN: 'NaN',
    'byte-order mark': '\ufeff{}',
    'lone high surrogate escape': '"\\ud83d"',
    'lone high surrogate then text': '"\\ud83dx"',
    'high surrogate then a non-surrogate escape': '"\\ud83d\\u0041"',
    'lone low surrogate escape': '["\\ude00"]',
    'control character in a string': '"a\u0001b"',
    'depth 65': '['.repeat(65) + ']'.repeat(65),
    'depth 65 of objects': '{"a":'.repeat(65) + '1' + '}'.repeat(65),
  };
  for (const [name, text] of Object.entries(bad)) {
    const error = errorOf(frame(3, Buffer.from(text, 'utf8')));
    assert.equal(error.error, 'invalid_json', name);
    assert.equal(error.code, 5, name);
  }
  for (const bytes of ['22c0af22', '5b22eda08022 5d']) {
    assert.equal(errorOf(frame(3, hex(bytes))).code, 5, `not UTF-8: ${bytes}`);
  }
  const deepest = '['.repeat(64) + ']'.repeat(64);
  assert.equal(decodeAll(frame(3, Buffer.from(deepest))).length, 1, 'depth 64 is allowed');
  assert.equal(errorOf(frame(3, Buffer.from('[[[1]]]')), { maxJsonDepth: 2 }).code, 5);
  // Brackets inside strings do not nest.
  assert.deepEqual(decodeAll(frame(3, Buffer.from(JSON.stringify('['.repeat(100) + '\\"{')))),
    [{ type: 'message', frameType: 3, value: '['.repeat(100) + '\\"{' }]);
});

test('malformed control frames: bad_control_frame, close code 6; unknown opcodes are passed over', () => {
  const bad = {
    empty: Buffer.alloc(0),
    'close of 1 byte': hex('01'),
    'close of 2 bytes': hex('0100'),
    'close reason not UTF-8': hex('010000 c080'),
  };
  for (const [name, payload] of Object.entries(bad)) {
    const error = errorOf(frame(4, payload));
    assert.equal(error.error, 'bad_control_frame', name);
    assert.equal(error.code, 6, name);
  }
  const events = decodeAll(Buffer.concat([frame(4, hex('7f')), frame(4, hex('02 01000000 02000000')), frame(1, 'after')]));
  assert.deepEqual(events.map((e) => e.type), ['control', 'control', 'message']);
  assert.equal(events[2].value, 'after');
});

test('frames before a bad one are delivered, nothing after it', () => {
  const bytes = Buffer.concat([frame(1, 'one'), frame(3, '{"two":2}'), header(7, 0), frame(1, 'never')]);
  const events = decodeAll(bytes);
  assert.deepEqual(events.map((e) => e.type), ['message', 'message', 'error']);
  assert.equal(events[2].code, 2);
  const decoder = new FrameDecoder();
  decoder.push(header(7, 0));
  assert.deepEqual(decoder.push(frame(1, 'later')), [], 'a failed decoder takes no more');
});

test('nothing is delivered after a close frame', () => {
  const events = decodeAll(Buffer.concat([frame(1, 'a'), encodeClose(0, 'bye'), frame(1, 'b')]));
  assert.deepEqual(events, [{ type: 'message', frameType: 1, value: 'a' }, { type: 'close', code: 0, reason: 'bye' }]);
});

// Every stream of frames split at every byte boundary (and fed a byte at a time)
// decodes to what it decodes to whole.
const sequences = {
  'every message type and controls': Buffer.concat([
    frame(1, 'héllo ✓ \u{1f600}'), frame(2, Buffer.from([0, 1, 2, 255])), frame(3, '{"a":[1,"two",{"b":null}]}'),
    header(1, 0), header(2, 0), frame(4, hex('7f 0102')), frame(1, 'x'.repeat(40)), encodeClose(0, 'done ✓'),
  ]),
  'a bad header after a message': Buffer.concat([frame(1, 'ok'), header(1, 1, [0, 0, 1]), Buffer.from('x')]),
  'bad UTF-8 after a message': Buffer.concat([frame(3, '[true]'), frame(1, hex('41 f09f98'))]),
  'bad JSON': Buffer.concat([frame(2, 'bin'), frame(3, '{"a":1,}')]),
  'too large': Buffer.concat([frame(1, 'small'), header(2, 1000), Buffer.alloc(20)]),
};

for (const [name, bytes] of Object.entries(sequences)) {
  test(`split at every byte boundary: ${name}`, () => {
    const options = { maxFrameSize: 512 };
    const whole = decodeAll(bytes, options);
    assert.ok(whole.length >= 2);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new FrameDecoder(options);
      const events = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
      assert.deepEqual(events, whole, `cut at ${cut}`);
    }
    for (let first = 0; first < bytes.length; first += 7) {
      for (let second = first; second <= bytes.length; second += 3) {
        const decoder = new FrameDecoder(options);
        const events = [
          ...decoder.push(bytes.subarray(0, first)), ...decoder.push(bytes.subarray(first, second)), ...decoder.push(bytes.subarray(second)),
        ];
        assert.deepEqual(events, whole, `cut at ${first} and ${second}`);
      }
    }
    const decoder = new FrameDecoder(options);
    const events = [];
    for (let i = 0; i < bytes.length; i++) events.push(...decoder.push(bytes.subarray(i, i + 1)));
    assert.deepEqual(events, whole, 'a byte at a time');
  });
}

test('a frame error is known as soon as the header is in, before any payload', () => {
  const decoder = new FrameDecoder({ maxFrameSize: 10 });
  assert.deepEqual(decoder.push(header(2, 11).subarray(0, 7)), []);
  assert.equal(decoder.push(header(2, 11).subarray(7))[0].code, 1);
});

test('send() encodes strings as text, buffers as binary, anything else as JSON, and refuses the rest', () => {
  assert.equal(encodeMessage('text')[0], 1);
  assert.equal(encodeMessage(Buffer.from('b'))[0], 2);
  assert.equal(encodeMessage(new Uint8Array([1, 2]))[0], 2);
  assert.deepEqual(encodeMessage(new Uint16Array([0x0201]).buffer), frame(2, Buffer.from([1, 2])));
  for (const value of [{ a: 1 }, [1], 5, 0, true, false, null, 'x'.length]) assert.equal(encodeMessage(value)[0], 3);
  assert.deepEqual(encodeMessage(null), frame(3, 'null'));
  for (const value of [undefined, () => 1, Symbol('s')]) assert.throws(() => encodeMessage(value), TypeError);
  assert.throws(() => encodeMessage(10n), TypeError);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => encodeMessage(cycle), TypeError);
  assert.throws(() => encodeMessage('x'.repeat(11), 10), RangeError);
  assert.equal(encodeMessage('x'.repeat(10), 10).length, 18);
});

test('a close reason is cut to 125 bytes without leaving half a character', () => {
  const reason = 'a' + '✓'.repeat(60);  // 1 + 180 bytes
  const close = encodeClose(255, reason);
  assert.ok(close.length - 8 <= 128);
  const [event] = decodeAll(close);
  assert.equal(event.type, 'close');
  assert.equal(event.code, 255);
  assert.equal(event.reason, 'a' + '✓'.repeat(41));
  assert.equal(encodeFrame(1, Buffer.from('ab')).toString('hex'), '010000000200000061 62'.replace(' ', ''));
});

// A connected pair of unix sockets in a temporary directory.
async function socketPair() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'multinode-frames-'));
  const file = path.join(dir, 's.sock');
  const server = net.createServer();
  await new Promise((resolve) => server.listen(file, resolve));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = net.createConnection(file);
  await new Promise((resolve) => client.once('connect', resolve));
  const other = await accepted;
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return [client, other];
}

const once = (emitter, name, ms = 5000) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms`)), ms);
  emitter.once(name, (value) => {
    clearTimeout(timer);
    resolve(value);
  });
});

// Everything the raw socket receives until its end, with a bound.
const readToEnd = (socket, ms = 5000) => new Promise((resolve, reject) => {
  const chunks = [];
  const timer = setTimeout(() => reject(new Error(`the socket did not end within ${ms} ms`)), ms);
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.on('close', () => {
    clearTimeout(timer);
    resolve(Buffer.concat(chunks));
  });
});

test('a framed stream on a socket: messages both ways, then close() gives stream_closed here and peer_closed there', async () => {
  const [a, b] = await socketPair();
  const left = frameStream(a);
  const right = frameStream(b);
  assert.equal(frameStream(a), left, 'the same framed stream for the same stream');
  const received = [];
  right.on('message', (value) => received.push(value));
  const big = Buffer.alloc(300000, 7);
  for (const value of ['text ✓', Buffer.from([1, 2, 3]), { json: [1, 2] }, 42, null, big]) left.send(value);
  const leftClosed = once(left, 'close');
  const rightClosed = once(right, 'close');
  left.close();
  assert.deepEqual(await leftClosed, { error: 'stream_closed', code: 0, reason: '' });
  assert.deepEqual(await rightClosed, { error: 'peer_closed', code: 0, reason: '' });
  assert.deepEqual(received, ['text ✓', Buffer.from([1, 2, 3]), { json: [1, 2] }, 42, null, big]);
  assert.equal(left.send('after'), false, 'send() on a closed stream queues nothing');
});

test('a bad frame: the receiver sends the close frame with its code and closes; the sender sees rejected_by_peer', async () => {
  const cases = [
    [header(1, 1, [0, 1, 0]), 3, 'bad_frame_header'],
    [header(8, 0), 2, 'bad_frame_type'],
    [header(2, 100), 1, 'frame_too_large'],
    [frame(1, hex('c080')), 4, 'invalid_utf8'],
    [frame(3, '[1,]'), 5, 'invalid_json'],
    [frame(4, hex('01')), 6, 'bad_control_frame'],
  ];
  for (const [bytes, code, name] of cases) {
    const [raw, b] = await socketPair();
    const framed = frameStream(b, { maxFrameSize: 64 });
    const messages = [];
    framed.on('message', (value) => messages.push(value));
    const closed = once(framed, 'close');
    const received = readToEnd(raw);
    raw.write(Buffer.concat([frame(1, 'first'), bytes, frame(1, 'never')]));
    const info = await closed;
    assert.equal(info.error, name);
    assert.equal(info.code, code);
    const events = new FrameDecoder().push(await received);
    assert.equal(events.length, 1, `one close frame, then the end (${name})`);
    assert.equal(events[0].type, 'close');
    assert.equal(events[0].code, code, name);
    assert.deepEqual(messages, ['first'], name);
    raw.destroy();
  }
  // Between two framed streams: the sender of a frame the other refuses learns why.
  const [a, b] = await socketPair();
  const sender = frameStream(a);
  const receiver = frameStream(b, { maxFrameSize: 10 });
  const senderClosed = once(sender, 'close');
  const receiverClosed = once(receiver, 'close');
  sender.send('this is longer than ten bytes');
  assert.equal((await receiverClosed).error, 'frame_too_large');
  const info = await senderClosed;
  assert.equal(info.error, 'rejected_by_peer');
  assert.equal(info.code, 1);
});

test('the end of the stream without a close frame is peer_gone, also in the middle of a frame', async () => {
  for (const tail of [Buffer.alloc(0), header(1, 10).subarray(0, 5), Buffer.concat([header(1, 10), Buffer.from('abc')])]) {
    const [raw, b] = await socketPair();
    const framed = frameStream(b);
    const messages = [];
    framed.on('message', (value) => messages.push(value));
    const closed = once(framed, 'close');
    raw.end(Buffer.concat([frame(2, 'whole'), tail]));
    assert.deepEqual(await closed, { error: 'peer_gone', code: null, reason: '' });
    assert.deepEqual(messages, [Buffer.from('whole')]);
    raw.destroy();
  }
});

// A fixed-seed generator, so that a failure is reproducible.
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('random and mutated input never throws, decodes alike however it is split, and stops at the first error', () => {
  const next = random(20101);
  const pick = (n) => Math.floor(next() * n);
  const values = ['', 'text ✓', '\u{1f600}', { a: [1, { b: 'c' }] }, [], 0, null, true, Buffer.from([0, 255, 10]), Buffer.alloc(0)];
  for (let round = 0; round < 400; round++) {
    const parts = [];
    for (let i = pick(6) + 1; i > 0; i--) {
      const choice = pick(values.length + 2);
      if (choice < values.length) parts.push(encodeMessage(values[choice]));
      else if (choice === values.length) parts.push(frame(4, Buffer.from([pick(256), pick(256), pick(256)])));
      else parts.push(Buffer.from(Array.from({ length: pick(20) }, () => pick(256))));  // garbage
    }
    const bytes = Buffer.concat(parts);
    for (let flips = pick(3); flips > 0 && bytes.length; flips--) bytes[pick(bytes.length)] = pick(256);
    const options = { maxFrameSize: 1 + pick(64) };
    const whole = decodeAll(bytes, options);
    const errors = whole.filter((e) => e.type === 'error');
    assert.ok(errors.length <= 1);
    if (errors.length) {
      assert.equal(whole.at(-1).type, 'error', 'nothing after the error');
      assert.ok([1, 2, 3, 4, 5, 6].includes(errors[0].code), `a close code of the spec: ${errors[0].code}`);
    }
    const decoder = new FrameDecoder(options);
    const events = [];
    let offset = 0;
    while (offset < bytes.length) {
      const size = 1 + pick(12);
      events.push(...decoder.push(bytes.subarray(offset, offset + size)));
      offset += size;
    }
    assert.deepEqual(events, whole, `round ${round}`);
  }
});

test('a stream framed after it ended closes with peer_gone', async () => {
  const [a, b] = await socketPair();
  a.destroy();
  await new Promise((resolve) => b.on('close', resolve).resume());
  const framed = frameStream(b);
  assert.deepEqual(await once(framed, 'close'), { error: 'peer_gone', code: null, reason: '' });
  assert.equal(framed.send('x'), false);
});

'use strict';
// The peer stream frames of docs/protocol.md ("Peer stream frames"): an 8-byte header
// (type, three reserved zero bytes, u32 LE length) and a payload. FrameDecoder is the
// pure decoder (bytes in, messages or one error out); FramedStream puts it on a Duplex
// stream with the WebSocket-like API of the original multi-node: send(value) and a
// 'message' event.

const { EventEmitter } = require('node:events');

const TEXT = 1;
const BINARY = 2;
const JSON_TYPE = 3;
const CONTROL = 4;
const HEADER_SIZE = 8;
const MAX_CONTROL_LENGTH = 128;
const MAX_CLOSE_REASON = 125;
const OPCODE_CLOSE = 0x01;
const OPCODE_HELLO = 0x02;
const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;
const LARGEST_MAX_FRAME_SIZE = 0xffffffff;
const DEFAULT_MAX_JSON_DEPTH = 64;

// The frame errors, named as the C++ library's errc values, with their close codes.
const CLOSE_CODES = {
  frame_too_large: 1,
  bad_frame_type: 2,
  bad_frame_header: 3,
  invalid_utf8: 4,
  invalid_json: 5,
  bad_control_frame: 6,
};

function frameError(error, reason) {
  return { error, code: CLOSE_CODES[error], reason };
}

// fatal: invalid UTF-8 throws; ignoreBOM: a leading U+FEFF is kept (the spec adds or
// removes none), so a JSON text that starts with one fails to parse, as in C++.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

const isHex = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

// JSON.parse knows no depth limit and takes lone UTF-16 surrogates in \u escapes; the
// C++ decoder (Boost.JSON) refuses both. One pass over the text outside and inside its
// strings checks them; JSON.parse then checks the grammar. Returns null or a reason.
function checkJsonText(text, maxDepth) {
  let depth = 0;
  let inString = false;
  let pendingHigh = false;  // the last escape was a high surrogate: a low one must follow
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!inString) {
      if (c === 0x22) {
        inString = true;
      } else if (c === 0x5b || c === 0x7b) {
        if (++depth > maxDepth) return `JSON nests deeper than ${maxDepth}`;
      } else if (c === 0x5d || c === 0x7d) {
        depth--;
      }
      continue;
    }
    if (c === 0x5c) {
      const next = text.charCodeAt(i + 1);
      if (next === 0x75 && i + 5 < text.length && [2, 3, 4, 5].every((k) => isHex(text.charCodeAt(i + k)))) {
        const unit = parseInt(text.substr(i + 2, 4), 16);
        if (pendingHigh) {
          if (unit < 0xdc00 || unit > 0xdfff) return 'a lone UTF-16 surrogate in a \\u escape';
          pendingHigh = false;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
          pendingHigh = true;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          return 'a lone UTF-16 surrogate in a \\u escape';
        }
        i += 5;
        continue;
      }
      if (pendingHigh) return 'a lone UTF-16 surrogate in a \\u escape';
      i += 1;  // any other escape: JSON.parse judges it
      continue;
    }
    if (pendingHigh) return 'a lone UTF-16 surrogate in a \\u escape';
    if (c === 0x22) inString = false;
  }
  return null;
}

function parseJsonPayload(bytes, maxDepth) {
  const text = decodeUtf8(bytes);
  if (text === null) return { error: frameError('invalid_json', 'JSON frame is not UTF-8') };
  const problem = checkJsonText(text, maxDepth);
  if (problem) return { error: frameError('invalid_json', problem) };
  try {
    return { value: JSON.parse(text) };
  } catch {
    return { error: frameError('invalid_json', 'JSON frame does not parse') };
  }
}

function checkOptions(options = {}) {
  const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  const maxJsonDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < 0 || maxFrameSize > LARGEST_MAX_FRAME_SIZE) {
    throw new RangeError(`maxFrameSize must be an integer from 0 to ${LARGEST_MAX_FRAME_SIZE}, not ${maxFrameSize}`);
  }
  if (!Number.isInteger(maxJsonDepth) || maxJsonDepth < 1) {
    throw new RangeError(`maxJsonDepth must be a positive integer, not ${maxJsonDepth}`);
  }
  return { maxFrameSize, maxJsonDepth };
}

// Bytes in (push), events out: { type: 'message', frameType, value } for text, binary
// and JSON frames; { type: 'control', opcode, payload } for a control frame of an
// opcode other than close; { type: 'close', code, reason } for a close frame. A bad
// frame gives { type: 'error', error, code, reason } and the decoder takes no more.
// Headers are checked as soon as their 8 bytes are in, before any payload is kept.
class FrameDecoder {
  constructor(options) {
    const { maxFrameSize, maxJsonDepth } = checkOptions(options);
    this.maxFrameSize = maxFrameSize;
    this.maxJsonDepth = maxJsonDepth;
    this.header = Buffer.alloc(HEADER_SIZE);
    this.headerFill = 0;
    this.type = 0;
    this.length = -1;  // -1: reading a header
    this.chunks = [];
    this.fill = 0;
    this.failed = false;
    this.closed = false;
  }

  // Returns the events of the frames `chunk` completes. After an error or a close
  // frame the rest of the input is ignored.
  push(chunk) {
    const events = [];
    let offset = 0;
    while (offset < chunk.length && !this.failed && !this.closed) {
      if (this.length < 0) {
        const take = Math.min(HEADER_SIZE - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < HEADER_SIZE) break;
        const error = this.checkHeader();
        if (error) {
          this.failed = true;
          events.push({ type: 'error', ...error });
          break;
        }
        this.headerFill = 0;
        this.type = this.header[0];
        this.length = this.header.readUInt32LE(4);
        this.chunks = [];
        this.fill = 0;
        if (this.length === 0) this.finish(Buffer.alloc(0), events);
        continue;
      }
      const take = Math.min(this.length - this.fill, chunk.length - offset);
      this.chunks.push(chunk.subarray(offset, offset + take));
      this.fill += take;
      offset += take;
      if (this.fill === this.length) {
        const payload = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
        this.chunks = [];
        this.finish(payload, events);
      }
    }
    return events;
  }

  checkHeader() {
    const h = this.header;
    if (h[1] !== 0 || h[2] !== 0 || h[3] !== 0) return frameError('bad_frame_header', 'reserved header bytes are not zero');
    const type = h[0];
    if (type < TEXT || type > CONTROL) return frameError('bad_frame_type', `unknown frame type ${type}`);
    const length = h.readUInt32LE(4);
    if (type === CONTROL && length > MAX_CONTROL_LENGTH) {
      return frameError('bad_control_frame', `control frame of ${length} bytes (at most ${MAX_CONTROL_LENGTH})`);
    }
    if (length > this.maxFrameSize) {
      return frameError('frame_too_large', `frame of ${length} bytes (at most ${this.maxFrameSize})`);
    }
    return null;
  }

  finish(payload, events) {
    const type = this.type;
    this.length = -1;
    const fail = (error) => {
      this.failed = true;
      events.push({ type: 'error', ...error });
    };
    if (type === TEXT) {
      const text = decodeUtf8(payload);
      if (text === null) return fail(frameError('invalid_utf8', 'text frame is not UTF-8'));
      events.push({ type: 'message', frameType: TEXT, value: text });
    } else if (type === BINARY) {
      events.push({ type: 'message', frameType: BINARY, value: payload });
    } else if (type === JSON_TYPE) {
      const parsed = parseJsonPayload(payload, this.maxJsonDepth);
      if (parsed.error) return fail(parsed.error);
      events.push({ type: 'message', frameType: JSON_TYPE, value: parsed.value });
    } else {
      if (payload.length < 1) return fail(frameError('bad_control_frame', 'empty control frame'));
      const opcode = payload[0];
      if (opcode !== OPCODE_CLOSE) {
        events.push({ type: 'control', opcode, payload });  // unknown opcodes are ignored by the stream
        return undefined;
      }
      if (payload.length < 3) return fail(frameError('bad_control_frame', 'close frame shorter than 3 bytes'));
      const reason = decodeUtf8(payload.subarray(3));
      if (reason === null) return fail(frameError('bad_control_frame', 'close reason is not UTF-8'));
      this.closed = true;
      events.push({ type: 'close', code: payload.readUInt16LE(1), reason });
    }
    return undefined;
  }
}

function encodeFrame(type, payload) {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame[0] = type;
  frame[1] = 0;
  frame[2] = 0;
  frame[3] = 0;
  frame.writeUInt32LE(payload.length, 4);
  if (payload.length) Buffer.from(payload.buffer, payload.byteOffset, payload.length).copy(frame, HEADER_SIZE);
  return frame;
}

// The close frame: opcode 1, u16 LE code, a reason cut to 125 bytes without leaving
// half a UTF-8 character.
function encodeClose(code, reason = '') {
  let bytes = Buffer.from(String(reason), 'utf8');
  if (bytes.length > MAX_CLOSE_REASON) {
    let end = MAX_CLOSE_REASON;
    while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;  // back to a character's first byte
    bytes = bytes.subarray(0, end);
  }
  const payload = Buffer.alloc(3 + bytes.length);
  payload[0] = OPCODE_CLOSE;
  payload.writeUInt16LE(code, 1);
  bytes.copy(payload, 3);
  return encodeFrame(CONTROL, payload);
}

// One message as a frame: a string is text, a Buffer (or any ArrayBuffer view, or an
// ArrayBuffer) binary, anything else JSON. Throws a TypeError for what JSON cannot
// carry (undefined, a function, a symbol, a cycle, a BigInt) and a RangeError above
// maxFrameSize.
function encodeMessage(value, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
  let type;
  let payload;
  if (typeof value === 'string') {
    type = TEXT;
    payload = Buffer.from(value, 'utf8');
  } else if (ArrayBuffer.isView(value)) {
    type = BINARY;
    payload = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  } else if (value instanceof ArrayBuffer) {
    type = BINARY;
    payload = Buffer.from(value);
  } else {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`send(): a ${typeof value} is not a JSON value: send a string, a Buffer or a JSON value`);
    type = JSON_TYPE;
    payload = Buffer.from(text, 'utf8');
  }
  if (payload.length > maxFrameSize) {
    throw new RangeError(`send(): a message of ${payload.length} bytes is above the maximum frame size ${maxFrameSize}`);
  }
  return encodeFrame(type, payload);
}

// A framed stream on a Duplex (the 'node' event's stream, or any socket):
//   send(value)  queues one message; false when closed (nothing queued) or when the
//                stream's buffer is full (queued; wait for 'drain').
//   close()      sends a close frame (code 0) after what is queued, then ends.
//   'message' (value)  text as a string, binary as a Buffer, JSON as its value.
//   'close' ({error, code, reason})  once, however it closed: error is 'peer_closed'
//                (the peer's close(), code 0), 'rejected_by_peer' (it refused a frame
//                of ours: code and reason say why), 'peer_gone' (the stream ended
//                without a close frame: the peer exited or died), 'stream_closed'
//                (close() here), or the frame error that made this side close it
//                ('frame_too_large', 'bad_frame_type', 'bad_frame_header',
//                'invalid_utf8', 'invalid_json', 'bad_control_frame'), after
//                sending the peer a close frame with that code.
//   'drain'      the stream's buffer emptied after send() returned false.
// peerId and peerSlot are the stream's (set on the mesh's streams).
class FramedStream extends EventEmitter {
  constructor(stream, options) {
    super();
    const { maxFrameSize, maxJsonDepth } = checkOptions(options);
    this.stream = stream;
    this.peerId = stream.peerId;
    this.peerSlot = stream.peerSlot;
    this.maxFrameSize = maxFrameSize;
    this.decoder = new FrameDecoder({ maxFrameSize, maxJsonDepth });
    this.open = true;
    this.onData = (chunk) => this.receive(chunk);
    this.onEnd = () => this.finish({ error: 'peer_gone', code: null, reason: '' }, () => stream.destroy());
    this.onError = () => this.onEnd();  // a reset or a broken pipe: the peer is gone all the same
    this.onDrain = () => this.emit('drain');
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
    stream.on('drain', this.onDrain);
    // Framed after the stream had already ended: it closes as the peer's end would.
    if (stream.destroyed || stream.readableEnded) process.nextTick(this.onEnd);
  }

  get isOpen() {
    return this.open;
  }

  send(value) {
    const frame = encodeMessage(value, this.maxFrameSize);
    if (!this.open) return false;
    return this.stream.write(frame);
  }

  close() {
    if (!this.open) return;
    this.finish({ error: 'stream_closed', code: 0, reason: '' }, () => {
      this.stream.once('finish', () => this.stream.destroy());
      this.stream.end(encodeClose(0));
    });
  }

  receive(chunk) {
    for (const event of this.decoder.push(chunk)) {
      if (!this.open) return;
      if (event.type === 'message') {
        this.emit('message', event.value);
      } else if (event.type === 'close') {
        const error = event.code === 0 ? 'peer_closed' : 'rejected_by_peer';
        this.finish({ error, code: event.code, reason: event.reason }, () => this.stream.destroy());
      } else if (event.type === 'error') {
        // One attempt at telling the peer why, without waiting for it to read, then
        // the socket closes: a peer that sends garbage may not read.
        this.finish({ error: event.error, code: event.code, reason: event.reason }, () => {
          this.stream.write(encodeClose(event.code, event.reason));
          this.stream.destroy();
        });
      }
    }
  }

  finish(info, action) {
    if (!this.open) return;
    this.open = false;
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    // The 'error' listener stays: an error after the close must not throw.
    action();
    this.emit('close', info);
  }
}

// Calling it twice on one stream gives the same framed stream (the first options hold).
const framed = new WeakMap();
function frameStream(stream, options) {
  if (!stream || typeof stream.write !== 'function' || typeof stream.on !== 'function') {
    throw new TypeError('frameStream(stream): stream must be a Duplex stream (the "node" event\'s stream)');
  }
  let result = framed.get(stream);
  if (!result) {
    result = new FramedStream(stream, options);
    framed.set(stream, result);
  }
  return result;
}

module.exports = {
  TEXT,
  BINARY,
  JSON: JSON_TYPE,
  CONTROL,
  OPCODE_CLOSE,
  OPCODE_HELLO,
  HEADER_SIZE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_JSON_DEPTH,
  CLOSE_CODES,
  FrameDecoder,
  FramedStream,
  encodeFrame,
  encodeClose,
  encodeMessage,
  frameStream,
};

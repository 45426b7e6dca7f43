'use strict';
// The 24-byte records of docs/protocol.md ("Records") as they travel on the
// supervisor connection of a `multinode run` worker (the mesh spec: a stream, so a
// reader collects 24 bytes per record), and the 17-byte hello a worker writes first
// on each mesh stream it connects.

const RECORD_SIZE = 24;
const READY = 1;
const PEER = 3;
const JOIN = 8;
const MASTER = 9;
const WATCHDOG = 10;
// A warm standby's first record (instead of join), and the supervisor's answer that
// makes it a worker in a slot (STANDBY-SPEC: `multinode run --standby K`).
const STANDBY = 12;
const PROMOTE = 13;

const HELLO_SIZE = 17;

// u16 type, u16 0, u32 peer id, u32 peer slot, u32 0, u64 value; little-endian.
function encodeRecord(type, peerId, peerSlot, value = 0) {
  const record = Buffer.alloc(RECORD_SIZE);
  record.writeUInt16LE(type, 0);
  record.writeUInt32LE(peerId, 4);
  record.writeUInt32LE(peerSlot, 8);
  record.writeBigUInt64LE(BigInt(value), 16);
  return record;
}

function decodeRecord(bytes) {
  return {
    type: bytes.readUInt16LE(0),
    reserved: bytes.readUInt16LE(2) | bytes.readUInt32LE(12),
    peerId: bytes.readUInt32LE(4),
    peerSlot: bytes.readUInt32LE(8),
    value: bytes.readBigUInt64LE(16),
  };
}

// Collects whole records from a byte stream.
class RecordReader {
  constructor() {
    this.pending = Buffer.alloc(0);
  }

  push(chunk) {
    const bytes = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const records = [];
    let offset = 0;
    for (; offset + RECORD_SIZE <= bytes.length; offset += RECORD_SIZE) {
      records.push(decodeRecord(bytes.subarray(offset, offset + RECORD_SIZE)));
    }
    this.pending = Buffer.from(bytes.subarray(offset));
    return records;
  }
}

// A control frame (type 4, length 9): opcode 0x02, u32 LE id, u32 LE slot.
function encodeHello(id, slot) {
  const hello = Buffer.alloc(HELLO_SIZE);
  hello[0] = 4;
  hello.writeUInt32LE(9, 4);
  hello[8] = 0x02;
  hello.writeUInt32LE(id, 9);
  hello.writeUInt32LE(slot, 13);
  return hello;
}

// { peerId, peerSlot } or null when the 17 bytes are not a hello.
function decodeHello(bytes) {
  if (bytes.length !== HELLO_SIZE) return null;
  if (bytes[0] !== 4 || bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return null;
  if (bytes.readUInt32LE(4) !== 9 || bytes[8] !== 0x02) return null;
  return { peerId: bytes.readUInt32LE(9), peerSlot: bytes.readUInt32LE(13) };
}

module.exports = {
  RECORD_SIZE,
  READY,
  PEER,
  JOIN,
  MASTER,
  WATCHDOG,
  STANDBY,
  PROMOTE,
  HELLO_SIZE,
  encodeRecord,
  decodeRecord,
  RecordReader,
  encodeHello,
  decodeHello,
};

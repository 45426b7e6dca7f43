#!/usr/bin/env python3
"""Writes the permessage-deflate seeds of fuzz/websocket_decoder_fuzz.cpp into
fuzz/corpus/websocket_decoder_fuzz/ (the other seeds there were written by hand).
Each seed is one byte (its low 5 bits choose how the fuzzer cuts the input into
reads; 0x40: permessage-deflate negotiated; 0x80: with context takeover), then
client frames: masked, RSV1 (0x40 in the first byte) on a compressed message's
first frame, its payload raw deflate data without the 00 00 ff ff tail."""

import os
import struct
import zlib

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "websocket_decoder_fuzz")
KEY = b"\x37\xfa\x21\x3d"


def frame(opcode, payload, fin=True, rsv1=False):
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n <= 0xFFFF:
        head = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    return head + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))


def compress(data, stream=None):
    stream = stream or zlib.compressobj(6, zlib.DEFLATED, -15)
    body = stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def final_block(data):
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    return stream.compress(data) + stream.flush(zlib.Z_FINISH)


text = "permessage-deflate caf\u00e9 \U0001F600 ".encode() * 20
takeover = zlib.compressobj(6, zlib.DEFLATED, -15)
first, second = compress(text, takeover), compress(text, takeover)
third = len(first) // 3
seeds = {
    "deflate_text": (0x40 | 3, frame(1, compress(text), rsv1=True)),
    "deflate_binary": (0x40 | 9, frame(2, compress(bytes(range(256)) * 4), rsv1=True) + frame(2, b"plain")),
    "deflate_fragments": (0x40 | 5, frame(1, first[:third], fin=False, rsv1=True) + frame(9, b"ping")
                          + frame(0, first[third:2 * third], fin=False) + frame(0, first[2 * third:])),
    "deflate_takeover": (0x80 | 0x40 | 7, frame(1, first, rsv1=True) + frame(1, second, rsv1=True)),
    "deflate_no_takeover": (0x40 | 7, frame(1, first, rsv1=True) + frame(1, second, rsv1=True)),
    "deflate_bomb": (0x40 | 17, frame(2, compress(bytes(1 << 16)), rsv1=True)),
    "deflate_corrupt": (0x40 | 1, frame(2, b"\xff\xff\xff", rsv1=True)),
    "deflate_bad_utf8": (0x40 | 2, frame(1, compress(b"ok \xc0\xaf and more"), rsv1=True)),
    "deflate_rsv1_continuation": (0x40 | 4, frame(1, first[:third], fin=False, rsv1=True)
                                  + frame(0, first[third:], rsv1=True)),
    "deflate_rsv1_ping": (0x40 | 6, frame(9, b"x", rsv1=True)),
    # A sender may end a message with a final block (BFINAL): the tail then follows it.
    "deflate_final_block": (0x40 | 8, frame(1, final_block(text), rsv1=True) + frame(1, compress(text), rsv1=True)),
    "deflate_off_rsv1": (3, frame(1, compress(text), rsv1=True)),
}

for name, (flags, body) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([flags]) + body)
print(f"{len(seeds)} seeds written to {out}")

#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/ipc_frame_decoder_fuzz.cpp into
fuzz/corpus/ipc_frame_decoder_fuzz/. Each seed is one byte that chooses how the
fuzzer cuts the input into reads, then frames as docs/protocol.md describes
them: type (1 text, 2 binary, 3 JSON, 4 control), three zero bytes, u32
little-endian payload length, payload."""

import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "ipc_frame_decoder_fuzz")


def frame(kind, payload, reserved=b"\0\0\0"):
    return bytes([kind]) + reserved + struct.pack("<I", len(payload)) + payload


def close(code, reason=b""):
    return frame(4, bytes([1]) + struct.pack("<H", code) + reason)


seeds = {
    "text": frame(1, "hello, wörld €".encode()),
    "binary": frame(2, bytes(range(64))),
    "json_object": frame(3, b'{"type":"tick","seq":1,"ok":true,"tags":["a","b"]}'),
    "json_nested": frame(3, b'[[[{"a":[1,2.5e3,-0,null,"\\u00e9"]}]]]'),
    "mixed": frame(1, b"a") + frame(2, b"") + frame(3, b"42") + frame(4, b"\x7ffuture") + close(0, b"bye"),
    "close_error": close(4, "text frame that is not valid UTF-8".encode()),
    "bad_utf8": frame(1, b"ok") + frame(1, b"\xed\xa0\x80"),
    "bad_json": frame(3, b'{"a":}'),
    "bad_header": frame(2, b"xy", reserved=b"\0\x80\0"),
    "too_large": bytes([2, 0, 0, 0]) + struct.pack("<I", 1 << 20),
    "truncated": frame(2, b"0123456789")[:12],
}

os.makedirs(out, exist_ok=True)
for index, (name, body) in enumerate(sorted(seeds.items())):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([index * 7 % 97]) + body)
print(f"wrote {len(seeds)} seeds to {out}")

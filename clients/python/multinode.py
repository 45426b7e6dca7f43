"""multinode for Python: a worker of `multinode run`, meshed with the others.

Standard library only (asyncio). Started by `multinode run -n 4 -p 8080 --
python3 app.py`, each process serves the listening socket the supervisor passes
(LISTEN_FDS, fd 3), gets one duplex stream to every other worker of the
supervisor (whatever their language), and knows whether it holds the master
role. docs/protocol.md, "The mesh for workers of `multinode run`", is the wire
format this module speaks.

    import asyncio, multinode

    async def main():
        nodes = await multinode.start(port=8080)

        def on_node(stream):                      # one per other worker
            frames = multinode.frame_stream(stream)
            frames.on_message = lambda message: print(stream.id, "says", message)
            frames.send({"hello": nodes.id})      # str, bytes, or any JSON value

        nodes.on_node(on_node)
        await nodes.serve(handle_client)          # asyncio.start_server on fd 3, then ready
        await nodes.wait_stopped()                # until SIGTERM (or nodes.stop())

    asyncio.run(main())

Under `multinode run --standby K` some processes start as warm standbys
(MULTINODE_STANDBY=1, no MULTINODE_SLOT): the same program, unchanged. In a
standby, start() returns with nodes.standby True and nodes.slot None; serve()
and serve_http() tell the supervisor the process is prepared (its code loaded,
its server built) and then wait, accepting nothing and meeting no peer, until
the supervisor promotes the standby into a dead worker's slot. Then nodes.slot
is that slot (and nodes.is_master True if the role comes with it), the process
joins the mesh, the on_promoted callbacks run (then on_master's, with the
role), serving begins and serve() returns as in any worker. SIGTERM to a
standby that was never promoted exits at once with status 0 (SystemExit).

    nodes.on_promoted(lambda: print("serving in slot", nodes.slot))
    await nodes.wait_promoted()                  # returns at once in a worker

Outside `multinode run` (no MULTINODE_ID in the environment) the program serves
alone: it binds host:port itself, is the master (id 0) and has no peers. That
is one process and no supervision; to get N processes, start it under
`multinode run -n N -- python3 app.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any, Awaitable, Callable, Optional

__all__ = [
    "start", "listen", "frame_stream", "Nodes", "Stream", "FrameStream", "FrameError",
    "CLOSE_NORMAL", "CLOSE_TOO_LARGE", "CLOSE_BAD_TYPE", "CLOSE_BAD_HEADER", "CLOSE_BAD_UTF8",
    "CLOSE_BAD_JSON", "CLOSE_BAD_CONTROL", "CLOSE_OTHER",
]

# --- records on the supervisor connection (24 bytes, little-endian) ---
_RECORD = struct.Struct("<HHIIIQ")  # type, 0, peer id, peer slot, 0, value
RECORD_READY, RECORD_PEER, RECORD_JOIN, RECORD_MASTER, RECORD_WATCHDOG = 1, 3, 8, 9, 10
RECORD_STANDBY, RECORD_PROMOTE = 12, 13  # a warm standby's first record; the supervisor's answer

# --- frames on the streams between workers (8-byte header, little-endian length) ---
TEXT, BINARY, JSON_FRAME, CONTROL = 1, 2, 3, 4
OP_CLOSE, OP_HELLO = 0x01, 0x02
CLOSE_NORMAL, CLOSE_TOO_LARGE, CLOSE_BAD_TYPE, CLOSE_BAD_HEADER = 0, 1, 2, 3
CLOSE_BAD_UTF8, CLOSE_BAD_JSON, CLOSE_BAD_CONTROL, CLOSE_OTHER = 4, 5, 6, 255
MAX_CONTROL = 128
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
HELLO_SIZE = 17
HELLO_TIMEOUT = 5.0


def _debug(*parts: Any) -> None:
    if os.environ.get("MULTINODE_LOG_LEVEL") == "debug":
        print("multinode:", *parts, file=sys.stderr, flush=True)


def _decimal(name: str) -> Optional[int]:
    """A non-negative decimal environment variable, the whole text; None otherwise."""
    value = os.environ.get(name)
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


class FrameError(Exception):
    """A frame the peer sent breaks docs/protocol.md; code is the close code sent back."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


def encode_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack("<B3xI", kind, len(payload)) + payload


def encode_value(value: Any) -> bytes:
    """The frame send() writes for value: str as text, bytes-like as binary, else JSON."""
    if isinstance(value, str):
        return encode_frame(TEXT, value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return encode_frame(BINARY, bytes(value))
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return encode_frame(JSON_FRAME, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    reason_bytes = reason.encode("utf-8")[:125]
    while True:  # not cut inside a character
        try:
            reason_bytes.decode("utf-8")
            break
        except UnicodeDecodeError:
            reason_bytes = reason_bytes[:-1]
    return encode_frame(CONTROL, struct.pack("<BH", OP_CLOSE, code) + reason_bytes)


def hello_frame(node_id: int, slot: int) -> bytes:
    return encode_frame(CONTROL, struct.pack("<BII", OP_HELLO, node_id, slot))


def _json_depth_ok(text: str, limit: int) -> bool:
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _no_constants(name: str) -> Any:
    raise ValueError(name + " is not JSON")


class FrameDecoder:
    """Frames out of bytes, checked in the order of docs/protocol.md ("Checks, in order").

    feed() returns the messages and control frames completed, as (kind, value) pairs:
    (TEXT, str), (BINARY, bytes), (JSON_FRAME, value), (CONTROL, payload bytes), and
    the FrameError of a bad frame (else None): the frames before it are returned,
    nothing after it is decoded, and the decoder is not to be fed again."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH):
        self.max_frame_size = max_frame_size
        self.max_json_depth = max_json_depth
        self._buffer = bytearray()
        self._header: Optional[tuple[int, int]] = None

    def feed(self, data: bytes) -> tuple[list[tuple[int, Any]], Optional[FrameError]]:
        out: list[tuple[int, Any]] = []
        try:
            self._feed(data, out)
        except FrameError as error:
            return out, error
        return out, None

    def _feed(self, data: bytes, out: list[tuple[int, Any]]) -> None:
        self._buffer += data
        buffer, at = self._buffer, 0
        try:
            while True:
                if self._header is None:
                    if len(buffer) - at < 8:
                        return
                    kind, length = buffer[at], struct.unpack_from("<I", buffer, at + 4)[0]
                    if buffer[at + 1] or buffer[at + 2] or buffer[at + 3]:
                        raise FrameError(CLOSE_BAD_HEADER, "reserved header bytes not zero")
                    if kind < TEXT or kind > CONTROL:
                        raise FrameError(CLOSE_BAD_TYPE, "unknown frame type %d" % kind)
                    if kind == CONTROL and length > MAX_CONTROL:
                        raise FrameError(CLOSE_BAD_CONTROL, "control frame longer than 128 bytes")
                    if length > self.max_frame_size:
                        raise FrameError(CLOSE_TOO_LARGE,
                                         "frame of %d bytes, above %d" % (length, self.max_frame_size))
                    at += 8
                    self._header = (kind, length)
                kind, length = self._header
                if len(buffer) - at < length:
                    return
                payload = bytes(buffer[at:at + length])
                at += length
                self._header = None
                out.append((kind, self._payload(kind, payload)))
        finally:
            del buffer[:at]  # once per feed: what is consumed goes in one move

    def _payload(self, kind: int, payload: bytes) -> Any:
        if kind == TEXT:
            try:
                return payload.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CLOSE_BAD_UTF8, "text frame is not valid UTF-8") from None
        if kind == BINARY:
            return payload
        if kind == JSON_FRAME:
            try:
                text = payload.decode("utf-8")
                if not _json_depth_ok(text, self.max_json_depth):
                    raise ValueError("nested too deep")
                return json.loads(text, parse_constant=_no_constants)
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise FrameError(CLOSE_BAD_JSON, "JSON frame does not parse or nests too deep") from None
        if len(payload) < 1:
            raise FrameError(CLOSE_BAD_CONTROL, "empty control frame")
        if payload[0] == OP_CLOSE:
            if len(payload) < 3:
                raise FrameError(CLOSE_BAD_CONTROL, "close frame shorter than 3 bytes")
            try:
                payload[3:].decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CLOSE_BAD_CONTROL, "close reason is not UTF-8") from None
        return payload


class Stream:
    """A duplex byte stream to one other worker: its id and slot, and asyncio's reader and writer."""

    def __init__(self, peer_id: int, peer_slot: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.id = peer_id
        self.slot = peer_slot
        self.reader = reader
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    def is_open(self) -> bool:
        """Not closed here, and the peer has not ended it."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def __repr__(self) -> str:
        return "<multinode.Stream to worker %d (slot %d)>" % (self.id, self.slot)


class FrameStream:
    """Messages over a Stream in docs/protocol.md's frames.

    send(value): str goes as a text frame, bytes-like as binary, any other value as JSON.
    Receiving: set on_message (called with each message), or `async for message in frames`.
    on_close is called once with (code, reason): code 0 is a normal close by the peer,
    1-255 the peer refused a frame of ours, None the stream ended without a close frame
    (the peer exited: "peer_gone"), or we refused one of the peer's (reason says which)."""

    def __init__(self, stream: Stream, *, max_frame_size: int = DEFAULT_MAX_FRAME,
                 max_json_depth: int = DEFAULT_MAX_JSON_DEPTH):
        self.stream = stream
        self.peer_id = stream.id
        self.max_frame_size = max_frame_size
        self.on_message: Optional[Callable[[Any], Any]] = None
        self.on_close: Optional[Callable[[Optional[int], str], Any]] = None
        self._decoder = FrameDecoder(max_frame_size, max_json_depth)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future = self._loop.create_future()
        self._task = self._loop.create_task(self._read())

    def send(self, value: Any) -> None:
        """Queues one message; safe to call from another thread (an HTTP handler's)."""
        frame = encode_value(value)
        if len(frame) - 8 > self.max_frame_size:
            raise ValueError("message of %d bytes is above max_frame_size %d" % (len(frame) - 8, self.max_frame_size))
        self._call(lambda: self._write(frame))

    async def drain(self) -> None:
        """Waits until what send() queued is mostly written (asyncio's flow control):
        a sender of much data awaits it between messages so that its buffer stays bounded."""
        if not self.closed.done():
            try:
                await self.stream.writer.drain()
            except ConnectionError:
                pass

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """A normal close (code 0) or a refusal (1-255): the close frame, then the socket."""
        self._call(lambda: self._finish_local(code, reason))

    def _call(self, action: Callable[[], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            action()
        else:
            self._loop.call_soon_threadsafe(action)

    def _write(self, frame: bytes) -> None:
        if not self.closed.done() and not self.stream.writer.is_closing():
            self.stream.write(frame)

    def _finish_local(self, code: int, reason: str) -> None:
        if self.closed.done():
            return
        self._write(close_frame(code, reason))
        self._end(code if code != CLOSE_NORMAL else None, reason or "closed", local=True)

    def _end(self, code: Optional[int], reason: str, local: bool = False) -> None:
        if self.closed.done():
            return
        self.closed.set_result((code, reason))
        self._queue.put_nowait(None)
        self.stream.close()
        if not local and self.on_close is not None:
            self.on_close(code, reason)
        if asyncio.current_task() is not self._task:
            self._task.cancel()

    async def _read(self) -> None:
        try:
            while not self.closed.done():
                data = await self.stream.reader.read(65536)
                if not data:
                    return self._end(None, "peer_gone: the stream ended without a close frame")
                frames, failure = self._decoder.feed(data)
                for kind, value in frames:
                    if self.closed.done():
                        return
                    if kind == CONTROL:
                        if value[0] == OP_CLOSE:
                            code = struct.unpack_from("<H", value, 1)[0]
                            reason = value[3:].decode("utf-8")
                            return self._end(code, "peer_closed" if code == 0 else
                                             "rejected_by_peer: %s" % (reason or "code %d" % code))
                        continue  # an unknown opcode is ignored
                    self._deliver(kind, value)
                if failure is not None:
                    # One attempt at telling the peer, then closed at once.
                    self._write(close_frame(failure.code, str(failure)))
                    return self._end(failure.code, "refused a frame of the peer: %s" % failure)
        except (ConnectionError, OSError) as error:
            self._end(None, "peer_gone: %s" % error)
        except asyncio.CancelledError:
            pass

    def _deliver(self, kind: int, value: Any) -> None:
        if self.on_message is not None:
            self.on_message(value)
        else:
            self._queue.put_nowait(value)

    def __aiter__(self) -> "FrameStream":
        return self

    async def __anext__(self) -> Any:
        value = await self._queue.get()
        if value is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return value


def frame_stream(stream: Stream, **options: Any) -> FrameStream:
    """Messages over a mesh stream (options: max_frame_size, max_json_depth)."""
    return FrameStream(stream, **options)


class Nodes:
    """This process's place among the workers.

    id, slot: MULTINODE_ID and MULTINODE_SLOT (0 and 0 alone; slot None in a standby
    until it is promoted); count: MULTINODE_NODES; is_master: true in exactly one live
    worker (see on_master); alone: not started by `multinode run`; standby: a warm
    standby not promoted yet (MULTINODE_STANDBY=1); sockets: the listening sockets;
    streams: the live peers' Streams by id. Events: on_node(callback),
    on_master(callback), on_promoted(callback)."""

    def __init__(self) -> None:
        self.id = _decimal("MULTINODE_ID") or 0
        self.alone = _decimal("MULTINODE_ID") is None
        # A warm standby (`multinode run --standby K`) gets no slot until it is promoted.
        self.standby = not self.alone and os.environ.get("MULTINODE_STANDBY") == "1"
        self.slot: Optional[int] = None if self.standby else (_decimal("MULTINODE_SLOT") or 0)
        self.count = _decimal("MULTINODE_NODES") or 1  # N, the workers of the supervisor
        # The master role: started with MULTINODE_MASTER=1, or handed over later ("master" event).
        self.is_master = self.alone or (not self.standby and os.environ.get("MULTINODE_MASTER") == "1")
        self.mesh_dir = os.environ.get("MULTINODE_MESH") if not self.alone else None
        self.sockets: list[socket.socket] = []
        self._streams: dict[int, Stream] = {}
        self._on_node: Optional[Callable[[Stream], Any]] = None
        self._on_master: Optional[Callable[[], Any]] = None
        self._queued: list[Stream] = []
        self._supervisor: Optional[asyncio.StreamWriter] = None
        self._tasks: set[asyncio.Task] = set()
        self._servers: list[Any] = []
        self._own_server: Optional[asyncio.AbstractServer] = None
        self._ready_sent = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopped: Optional[asyncio.Future] = None
        self._stopping = False
        self._clients: set[asyncio.Task] = set()
        self._on_promoted: list[Callable[[], Any]] = []
        self._promoted: Optional[asyncio.Future] = None  # a standby's promotion
        self._standby_ready_sent = False

    @property
    def streams(self) -> dict[int, Stream]:
        """The streams to the peers alive now, by peer id."""
        return {i: stream for i, stream in self._streams.items() if stream.is_open()}

    # --- events ---
    def on_node(self, callback: Callable[[Stream], Any]) -> Callable[[Stream], Any]:
        """callback(stream) for every other worker, those met before it was set included.
        Usable as a decorator."""
        self._on_node = callback
        queued, self._queued = self._queued, []
        for stream in queued:
            callback(stream)
        return callback

    def on_master(self, callback: Callable[[], Any]) -> Callable[[], Any]:
        """callback() when this process is handed the master role (it then stays master)."""
        self._on_master = callback
        return callback

    def on_promoted(self, callback: Callable[[], Any]) -> Callable[[], Any]:
        """callback() when this standby is promoted: nodes.slot and nodes.is_master are
        set, it has joined the mesh, and serving begins. Never called in a process that
        did not start as a standby. Usable as a decorator; several may be set."""
        self._on_promoted.append(callback)
        return callback

    async def wait_promoted(self) -> None:
        """Returns once this standby is promoted; at once in a process that is no standby."""
        if self._promoted is not None:
            await asyncio.shield(self._promoted)

    # --- start ---
    async def _start(self, port: int, host: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        self.sockets = self._listening_sockets(port, host)
        if self.standby:
            if not self.mesh_dir:
                raise RuntimeError("worker %d is a standby (MULTINODE_STANDBY=1) but got no MULTINODE_MESH: a Python "
                                   "standby waits for its promotion on the mesh's supervisor connection, so "
                                   "--standby needs a multinode whose `run` gives the mesh" % self.id)
            self._promoted = self._loop.create_future()
        try:
            self._loop.add_signal_handler(signal.SIGTERM, self.stop)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the caller stops us
        if self.mesh_dir is not None:
            await self._join()
        self._spawn(self._watchdog())

    def _listening_sockets(self, port: int, host: str) -> list[socket.socket]:
        count, pid = _decimal("LISTEN_FDS"), _decimal("LISTEN_PID")
        if count and pid == os.getpid():
            return [socket.socket(fileno=3 + i) for i in range(count)]
        if not self.alone:
            raise RuntimeError("MULTINODE_ID is set but LISTEN_FDS/LISTEN_PID do not name this process: "
                               "start the program with `multinode run`, or unset MULTINODE_ID to serve alone")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
            sock.listen(1024)
        except OSError as error:
            sock.close()
            raise RuntimeError("cannot listen on port %d: %s (choose another port, or start the program "
                               "with `multinode run -p PORT -- ...`)" % (port, error.strerror)) from None
        return [sock]

    async def _join(self) -> None:
        assert self.mesh_dir is not None
        own = os.path.join(self.mesh_dir, "%d.sock" % self.id)
        try:
            self._own_server = await asyncio.start_unix_server(self._accepted, path=own)
            reader, writer = await asyncio.open_unix_connection(os.path.join(self.mesh_dir, "supervisor.sock"))
        except OSError as error:
            if self.standby:
                raise RuntimeError("standby %d cannot reach the supervisor in %s (%s): it cannot wait for a "
                                   "promotion; is `multinode run` still running?" % (self.id, self.mesh_dir, error))
            print("multinode: cannot join the workers' mesh in %s: %s; serving without peers (is the "
                  "supervisor running, and is MULTINODE_MESH its directory?)" % (self.mesh_dir, error),
                  file=sys.stderr, flush=True)
            return
        self._supervisor = writer
        if self.standby:
            # Instead of the join: slot 0 until the promotion names one.
            writer.write(_RECORD.pack(RECORD_STANDBY, 0, self.id, 0, 0, os.getpid()))
        else:
            writer.write(_RECORD.pack(RECORD_JOIN, 0, self.id, self.slot, 0, os.getpid()))
        self._spawn(self._records(reader))

    async def _records(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.readexactly(_RECORD.size)
                kind, _, peer, peer_slot, _, value = _RECORD.unpack(data)
                if kind == RECORD_PROMOTE:
                    self._promote(peer, peer_slot, value)
                elif self.standby:
                    _debug("ignored a record of type %d before the promotion" % kind)
                elif kind == RECORD_PEER:
                    self._spawn(self._connect(peer, peer_slot))
                elif kind == RECORD_MASTER and not self.is_master:
                    self.is_master = True
                    if self._on_master is not None:
                        self._on_master()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if not self._stopping:
            print("multinode: the supervisor is gone: stopping", file=sys.stderr, flush=True)
            self.stop()

    def _promote(self, peer: int, peer_slot: int, value: int) -> None:
        """The supervisor's promote record: this standby is the worker of peer_slot from
        now on. It joins on the same connection (peer records come back), and serve()
        or serve_http(), waiting for this, begin serving and say ready in the new slot."""
        if not self.standby or self._stopping or peer != self.id or peer_slot == 0 or self._supervisor is None:
            _debug("ignored a promote record (id %d, slot %d): not a standby waiting as %d" % (peer, peer_slot, self.id))
            return
        self.standby = False
        self.slot = peer_slot
        master = value == 1 and not self.is_master
        if master:
            self.is_master = True
        self._supervisor.write(_RECORD.pack(RECORD_JOIN, 0, self.id, self.slot, 0, os.getpid()))
        assert self._promoted is not None
        self._promoted.set_result(None)
        for callback in self._on_promoted:
            callback()
        if master and self._on_master is not None:
            self._on_master()

    async def _wait_for_promotion(self) -> None:
        """In a standby: says it is prepared (the ready record, slot 0), then waits."""
        if self.standby:
            self.ready()
            await self.wait_promoted()

    async def _connect(self, peer: int, peer_slot: int) -> None:
        assert self.mesh_dir is not None
        try:
            reader, writer = await asyncio.open_unix_connection(os.path.join(self.mesh_dir, "%d.sock" % peer))
        except OSError as error:  # it died meanwhile
            _debug("worker %d is gone before we met: %s" % (peer, error))
            return
        writer.write(hello_frame(self.id, self.slot))
        self._met(Stream(peer, peer_slot, reader, writer))

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readexactly(HELLO_SIZE), HELLO_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if hello[:9] != b"\x04\x00\x00\x00\x09\x00\x00\x00\x02":
            _debug("closing a connection to our socket that did not begin with a hello")
            writer.close()
            return
        peer, peer_slot = struct.unpack_from("<II", hello, 9)
        self._met(Stream(peer, peer_slot, reader, writer))

    def _met(self, stream: Stream) -> None:
        if self._stopping:
            stream.close()
            return
        for gone in [i for i, known in self._streams.items() if not known.is_open()]:
            del self._streams[gone]
        self._streams[stream.id] = stream
        if self._on_node is not None:
            self._on_node(stream)
        else:
            self._queued.append(stream)

    # --- serving, readiness, heartbeats ---
    async def serve(self, client_connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                    **options: Any) -> list[asyncio.AbstractServer]:
        """asyncio.start_server(client_connected) on every listening socket, then ready().
        At stop(), the connections in hand are waited for. In a standby it first says
        ready as a standby and waits for the promotion."""
        await self._wait_for_promotion()

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._clients.add(task)
            try:
                await client_connected(reader, writer)
            finally:
                self._clients.discard(task)

        servers = [await asyncio.start_server(tracked, sock=sock, **options) for sock in self.sockets]
        self._servers.extend(servers)
        self.ready()
        return servers

    async def serve_http(self, handler: type) -> None:
        """http.server's ThreadingHTTPServer with handler (a BaseHTTPRequestHandler class)
        on the first listening socket, in a thread; then ready(). A handler finds this
        Nodes at self.server.nodes. At stop(), the requests in hand are finished (their
        threads joined). In a standby it first says ready as a standby and waits for
        the promotion."""
        import http.server

        await self._wait_for_promotion()

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = False  # joined by server_close(): a stop finishes what is in hand
            block_on_close = True

        sock = self.sockets[0]
        # Every worker accepts on the same socket: one woken for a connection another
        # took must not block in accept() (socketserver then skips the turn), or a stop
        # would wait for it.
        sock.setblocking(False)
        httpd = Server(sock.getsockname()[:2], handler, bind_and_activate=False)
        httpd.socket.close()
        httpd.socket = sock
        httpd.server_name, httpd.server_port = socket.gethostname(), sock.getsockname()[1]
        httpd.nodes = self  # a handler's self.server.nodes
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        self._servers.append(httpd)
        self.ready()

    def ready(self) -> None:
        """Tells the supervisor this process serves (for `multinode run --ready notify`).
        In a standby not promoted yet: that it is prepared (the ready record, slot 0),
        once; after the promotion it says ready again, in its slot."""
        if self.standby:
            if not self._standby_ready_sent and self._supervisor is not None:
                self._standby_ready_sent = True
                self._supervisor.write(_RECORD.pack(RECORD_READY, 0, self.id, 0, 0, os.getpid()))
            return
        if self._ready_sent:
            return
        self._ready_sent = True
        if self._supervisor is not None:
            self._supervisor.write(_RECORD.pack(RECORD_READY, 0, self.id, self.slot, 0, os.getpid()))
        else:
            _notify(b"READY=1")

    async def _watchdog(self) -> None:
        usec = _decimal("WATCHDOG_USEC")
        owner = _decimal("WATCHDOG_PID")
        if not usec or (owner is not None and owner != os.getpid()):
            return
        while True:
            # From the event loop: a loop that is stuck sends none, and is replaced.
            if self._supervisor is not None and not self._supervisor.is_closing():
                self._supervisor.write(_RECORD.pack(RECORD_WATCHDOG, 0, self.id, self.slot or 0, 0, 0))
            else:
                _notify(b"WATCHDOG=1")
            await asyncio.sleep(usec / 2e6)

    # --- stopping ---
    def stop(self) -> None:
        """Stops gracefully: no more connections taken, those in hand finished, then the
        streams end and wait_stopped() returns. SIGTERM calls it. A standby not promoted
        yet serves nothing and has nothing to finish: it exits at once with status 0
        (SystemExit, raised here)."""
        if self._stopped is None or self._stopped.done() or self._stopping:
            return
        self._stopping = True
        # The supervisor signals the worker and its process group (two SIGTERMs): the
        # second must not kill it once the loop has closed and put SIGTERM back to its
        # default (nor a standby while Python exits). A stopping worker ignores
        # SIGTERM; the stop timeout's SIGKILL remains.
        try:
            if self._loop is not None:
                self._loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread
        if self.standby:
            raise SystemExit(0)
        for server in self._servers:
            if isinstance(server, asyncio.AbstractServer):
                server.close()
        if self._own_server is not None:
            self._own_server.close()
        for task in self._tasks:
            task.cancel()
        asyncio.ensure_future(self._finish(), loop=self._loop)

    async def _finish(self) -> None:
        if self._clients:
            await asyncio.wait(set(self._clients))
        loop = asyncio.get_running_loop()
        for server in self._servers:
            if not isinstance(server, asyncio.AbstractServer):
                # shutdown() waits for serve_forever, server_close() for the requests: not on the loop.
                await loop.run_in_executor(None, lambda s=server: (s.shutdown(), s.server_close()))
        for stream in self._streams.values():
            stream.close()
        if self._supervisor is not None:
            self._supervisor.close()
        assert self._stopped is not None
        if not self._stopped.done():
            self._stopped.set_result(None)

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await asyncio.shield(self._stopped)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _notify(message: bytes) -> None:
    """One sd_notify(3) datagram on NOTIFY_SOCKET, when there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message, address)
    except OSError as error:
        _debug("NOTIFY_SOCKET: %s" % error)


async def start(*, port: int = 8080, host: str = "",
                on_node: Optional[Callable[[Stream], Any]] = None,
                on_master: Optional[Callable[[], Any]] = None,
                on_promoted: Optional[Callable[[], Any]] = None) -> Nodes:
    """This process's Nodes, in the running event loop: its listening sockets (from
    LISTEN_FDS, or port/host bound here when alone), its place in the mesh (joined; a
    standby: waiting for its promotion), SIGTERM handled (stop()). Call serve() or
    serve_http() next, which report ready (in a standby: wait for the promotion first)."""
    nodes = Nodes()
    if on_node is not None:
        nodes.on_node(on_node)
    if on_master is not None:
        nodes.on_master(on_master)
    if on_promoted is not None:
        nodes.on_promoted(on_promoted)
    await nodes._start(port, host)
    return nodes


def listen(handler: Optional[type] = None, *, port: int = 8080, host: str = "",
           on_node: Optional[Callable[[Stream], Any]] = None,
           on_master: Optional[Callable[[], Any]] = None,
           on_promoted: Optional[Callable[[], Any]] = None,
           main: Optional[Callable[[Nodes], Awaitable[None]]] = None) -> None:
    """The blocking form: serves handler (an http.server.BaseHTTPRequestHandler class)
    and the mesh until SIGTERM. main(nodes), a coroutine function, runs once started
    (in a standby: once promoted)."""

    async def run() -> None:
        nodes = await start(port=port, host=host, on_node=on_node, on_master=on_master, on_promoted=on_promoted)
        if handler is None:
            await nodes._wait_for_promotion()
        if handler is not None:
            await nodes.serve_http(handler)
        if main is not None:
            await main(nodes)
        await nodes.wait_stopped()

    asyncio.run(run())

"""Tests of clients/python/multinode.py, run by CTest with Debian's /usr/bin/python3.

The frame decoder against docs/protocol.md (its examples, every check and its close
code, cut at every byte); a FrameStream against a raw peer on a socketpair; the
program served alone outside `multinode run`; and real `multinode run -n 3` meshes
of Python workers: every pair exchanges text, binary and JSON, exactly one worker
is master, a worker killed with SIGKILL ends its streams at the survivors, its
replacement meets each of them, and the master role is handed over; and warm
standbys (MULTINODE_STANDBY=1) against a fake supervisor socket: `standby` then
`ready` with slot 0 and heartbeats while waiting, nothing accepted on fd 3 before
the `promote` record, then serving, the join with the promoted slot, the hello to
a peer with it, the master role, and SIGTERM while waiting exits 0.

MULTINODE_COMMAND names the `multinode` binary (CTest sets it); without it the
tests that need it are skipped.
"""

import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import multinode  # noqa: E402

COMMAND = os.environ.get("MULTINODE_COMMAND", "")
PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def header(kind, length, reserved=b"\0\0\0"):
    return bytes([kind]) + reserved + struct.pack("<I", length)


class DecoderTest(unittest.TestCase):
    def decode_all(self, data, **options):
        decoder = multinode.FrameDecoder(**options)
        return decoder.feed(data)

    def test_the_examples_of_the_protocol_page(self):
        self.assertEqual(multinode.encode_value("hi"), bytes.fromhex("01000000 02000000 6869"))
        self.assertEqual(multinode.encode_value({"a": 1}), bytes.fromhex("03000000 07000000 7b2261223a317d"))
        self.assertEqual(multinode.encode_value(bytes(range(64)))[:8], bytes.fromhex("02000000 40000000"))
        self.assertEqual(multinode.close_frame(0), bytes.fromhex("04000000 03000000 010000"))
        self.assertEqual(multinode.close_frame(4, "bad UTF-8"),
                         bytes.fromhex("04000000 0c000000 010400 626164205554462d38"))
        self.assertEqual(multinode.hello_frame(7, 2), bytes.fromhex("04000000 09000000 02 07000000 02000000"))

    def test_messages_of_each_type_come_out_whole_at_every_cut(self):
        data = (multinode.encode_value("héllo") + multinode.encode_value(b"\0\1\2") +
                multinode.encode_value([1, {"b": None}]) + multinode.encode_value("") +
                multinode.encode_frame(multinode.CONTROL, b"\x7fignored"))
        expected = [(1, "héllo"), (2, b"\0\1\2"), (3, [1, {"b": None}]), (1, ""), (4, b"\x7fignored")]
        for cut in range(len(data) + 1):
            decoder = multinode.FrameDecoder()
            first, error1 = decoder.feed(data[:cut])
            second, error2 = decoder.feed(data[cut:])
            self.assertIsNone(error1)
            self.assertIsNone(error2)
            self.assertEqual(first + second, expected, "cut at %d" % cut)

    def check_refused(self, data, code, **options):
        frames, error = self.decode_all(data, **options)
        self.assertIsNotNone(error, data)
        self.assertEqual(error.code, code, str(error))
        return frames

    def test_each_check_gives_its_close_code(self):
        self.check_refused(header(1, 0, b"\0\1\0"), multinode.CLOSE_BAD_HEADER)
        self.check_refused(header(0, 0), multinode.CLOSE_BAD_TYPE)
        self.check_refused(header(5, 0), multinode.CLOSE_BAD_TYPE)
        self.check_refused(header(4, 129), multinode.CLOSE_BAD_CONTROL)
        self.check_refused(header(2, 1001), multinode.CLOSE_TOO_LARGE, max_frame_size=1000)
        self.check_refused(header(1, 2) + b"\xc0\xaf", multinode.CLOSE_BAD_UTF8)  # overlong
        self.check_refused(header(1, 3) + b"\xed\xa0\x80", multinode.CLOSE_BAD_UTF8)  # surrogate
        self.check_refused(header(1, 4) + b"\xf4\x90\x80\x80", multinode.CLOSE_BAD_UTF8)  # above U+10FFFF
        self.check_refused(header(3, 0), multinode.CLOSE_BAD_JSON)
        self.check_refused(header(3, 5) + b"[1,2,", multinode.CLOSE_BAD_JSON)
        self.check_refused(header(3, 3) + b"NaN", multinode.CLOSE_BAD_JSON)
        self.check_refused(header(3, 6) + b"[1,2,]", multinode.CLOSE_BAD_JSON)
        self.check_refused(header(4, 0), multinode.CLOSE_BAD_CONTROL)
        self.check_refused(header(4, 2) + b"\x01\x00", multinode.CLOSE_BAD_CONTROL)
        self.check_refused(header(4, 4) + b"\x01\x00\x00\xff", multinode.CLOSE_BAD_CONTROL)

    def test_json_nests_at_most_the_depth(self):
        deep = "[" * 64 + "]" * 64
        frames, error = self.decode_all(multinode.encode_frame(3, deep.encode()))
        self.assertIsNone(error)
        self.check_refused(multinode.encode_frame(3, ("[" * 65 + "]" * 65).encode()), multinode.CLOSE_BAD_JSON)
        # Brackets inside strings do not count.
        frames, error = self.decode_all(multinode.encode_frame(3, json.dumps(["[" * 100]).encode()))
        self.assertIsNone(error)

    def test_frames_before_a_bad_one_are_delivered_and_none_after(self):
        data = multinode.encode_value("one") + header(9, 0) + multinode.encode_value("after")
        self.assertEqual(self.check_refused(data, multinode.CLOSE_BAD_TYPE), [(1, "one")])

    def test_the_header_is_checked_before_the_payload_is_in(self):
        decoder = multinode.FrameDecoder(max_frame_size=10)
        frames, error = decoder.feed(header(2, 11))
        self.assertEqual(error.code, multinode.CLOSE_TOO_LARGE)


class FrameStreamTest(unittest.TestCase):
    """A FrameStream against a raw peer: the bytes it sends back and what it reports."""

    def run_with_peer(self, script):
        async def main():
            ours, theirs = socket.socketpair()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            stream = multinode.Stream(9, 2, reader, writer)
            frames = multinode.frame_stream(stream)
            messages, closes = [], []
            frames.on_message = messages.append
            frames.on_close = lambda code, reason: closes.append((code, reason))
            theirs.setblocking(False)
            loop = asyncio.get_running_loop()
            result = await asyncio.wait_for(script(loop, frames, theirs), 10)
            theirs.close()
            return messages, closes, result

        return asyncio.run(main())

    @staticmethod
    async def read_until_eof(loop, sock):
        data = b""
        while True:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                return data
            data += chunk

    def test_a_bad_frame_is_answered_with_its_close_code_and_the_stream_closes(self):
        async def script(loop, frames, theirs):
            await loop.sock_sendall(theirs, multinode.encode_value("fine") + header(1, 1) + b"\xff")
            return await self.read_until_eof(loop, theirs)

        messages, closes, sent = self.run_with_peer(script)
        self.assertEqual(messages, ["fine"])
        self.assertEqual(sent[:11], header(4, len(sent) - 8) + b"\x01\x04\x00")
        self.assertEqual(closes[0][0], multinode.CLOSE_BAD_UTF8)

    def test_messages_both_ways_then_a_normal_close_by_the_peer(self):
        async def script(loop, frames, theirs):
            frames.send("text")
            frames.send(b"\x00\xff")
            frames.send({"k": [1, 2.5, None, True]})
            await loop.sock_sendall(theirs, multinode.encode_value(b"bin") + multinode.close_frame(0))
            return await self.read_until_eof(loop, theirs)

        messages, closes, sent = self.run_with_peer(script)
        self.assertEqual(messages, [b"bin"])
        self.assertEqual(closes, [(0, "peer_closed")])
        decoded, error = multinode.FrameDecoder().feed(sent)
        self.assertIsNone(error)
        self.assertEqual(decoded, [(1, "text"), (2, b"\x00\xff"), (3, {"k": [1, 2.5, None, True]})])

    def test_an_end_without_close_frame_is_peer_gone(self):
        async def script(loop, frames, theirs):
            theirs.shutdown(socket.SHUT_WR)
            return await asyncio.wait_for(asyncio.shield(frames.closed), 5)

        messages, closes, result = self.run_with_peer(script)
        self.assertIsNone(closes[0][0])
        self.assertIn("peer_gone", closes[0][1])

    def test_async_iteration_ends_with_the_stream(self):
        async def script(loop, frames, theirs):
            frames.on_message = None
            await loop.sock_sendall(theirs, multinode.encode_value("a") + multinode.encode_value([2]))
            theirs.shutdown(socket.SHUT_WR)
            return [message async for message in frames]

        messages, closes, got = self.run_with_peer(script)
        self.assertEqual(got, ["a", [2]])


# What each test worker answers a line with: its pid.
CLIENT = r'''
async def client(reader, writer):
    await reader.readline()
    writer.write(b"%d\n" % os.getpid())
    await writer.drain()
    writer.close()
'''

WORKER = r'''
import asyncio, os, sys
import multinode

''' + CLIENT + r'''
async def main():
    nodes = await multinode.start(port=int(os.environ.get("PORT", "0")), host="127.0.0.1")
    print("START", nodes.id, os.getpid(), "master" if nodes.is_master else "-", flush=True)
    nodes.on_master(lambda: print("MASTER", nodes.id, flush=True))
    nodes.on_promoted(lambda: print("PROMOTED", nodes.id, nodes.slot, os.getpid(), flush=True))

    def on_node(stream):
        frames = multinode.frame_stream(stream)
        def message(value):
            kind = "text" if isinstance(value, str) else "binary" if isinstance(value, bytes) else "json"
            print("RECV", nodes.id, stream.id, kind, repr(value), flush=True)
        frames.on_message = message
        frames.on_close = lambda code, reason: print("END", nodes.id, stream.id, code, flush=True)
        frames.send("from %d" % nodes.id)
        frames.send(bytes([nodes.id % 256, 0, 255]))
        frames.send({"from": nodes.id, "list": [1, "two"]})

    nodes.on_node(on_node)
    await nodes.serve(client)
    await nodes.wait_stopped()
    print("STOPPED", nodes.id, flush=True)

asyncio.run(main())
'''


class Lines:
    """A process's stdout lines, read by a thread; waits bounded in time."""

    def __init__(self, stream):
        self.lines, self.cond = [], threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def matching(self, pattern):
        with self.cond:
            return [m.groups() for m in (re.search(pattern, line) for line in self.lines) if m]


def start_worker_dir():
    directory = tempfile.TemporaryDirectory(prefix="multinode-py-")
    with open(os.path.join(directory.name, "worker.py"), "w") as f:
        f.write(WORKER)
    return directory


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTINODE_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    env["PYTHONPATH"] = HERE
    env.update(extra)
    return env


class AloneTest(unittest.TestCase):
    def test_outside_multinode_run_it_serves_alone_as_the_master(self):
        directory = start_worker_dir()
        port = free_port()
        process = subprocess.Popen([PYTHON, os.path.join(directory.name, "worker.py")], stdout=subprocess.PIPE,
                                   text=True, env=environment(PORT=str(port)))
        lines = Lines(process.stdout)
        try:
            self.assertTrue(lines.wait(lambda l: any(x.startswith("START") for x in l)))
            self.assertEqual(lines.matching(r"^START (\d+) (\d+) (\S+)"), [("0", str(process.pid), "master")])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"hi\n")
                self.assertEqual(c.makefile().readline().strip(), str(process.pid))
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(10), 0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
            lines.thread.join(5)
            process.stdout.close()
            directory.cleanup()


@unittest.skipUnless(COMMAND and os.access(COMMAND, os.X_OK), "MULTINODE_COMMAND is not the multinode binary")
class MeshTest(unittest.TestCase):
    def setUp(self):
        self.supervisor = None
        self.directory = start_worker_dir()
        self.port = free_port()

    def launch(self, *options, nodes=3, script="worker.py"):
        self.supervisor = subprocess.Popen(
            [COMMAND, "run", "-n", str(nodes), "--host", "127.0.0.1", "-p", str(self.port), "--ready", "notify",
             "--control", self.control(), *options, "--", PYTHON, os.path.join(self.directory.name, script)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(), start_new_session=True)
        self.lines = Lines(self.supervisor.stdout)
        self.errors = Lines(self.supervisor.stderr)

    def control(self):
        return os.path.join(self.directory.name, "control.sock")

    def tearDown(self):
        if self.supervisor is None:
            self.directory.cleanup()
            return
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisor.pid, signal.SIGKILL)
                self.supervisor.wait(5)
        for pid in self.worker_pids():
            try:
                os.kill(pid, signal.SIGKILL)  # (already gone with the supervisor, normally)
            except ProcessLookupError:
                pass
        for lines, pipe in ((self.lines, self.supervisor.stdout), (self.errors, self.supervisor.stderr)):
            lines.thread.join(5)
            pipe.close()
        self.directory.cleanup()

    def worker_pids(self):
        return [int(pid) for _, pid, _ in self.lines.matching(r"^\[worker \d+ slot \d+ pid \d+\] START (\d+) (\d+) (\S+)")]

    def received(self, kinds=("text", "binary", "json")):
        got = {}
        for me, peer, kind, value in self.lines.matching(r"RECV (\d+) (\d+) (\w+) (.*)$"):
            got.setdefault((int(me), int(peer)), {})[kind] = value
        return {pair: values for pair, values in got.items() if all(k in values for k in kinds)}

    def starts(self):
        return {int(i): (int(pid), role) for i, pid, role in self.lines.matching(r"START (\d+) (\d+) (\S+)")}

    def test_every_pair_exchanges_messages_and_a_killed_worker_is_replaced_in_the_mesh(self):
        self.launch()
        ids = [1, 2, 3]
        pairs = [(a, b) for a in ids for b in ids if a != b]
        self.assertTrue(self.lines.wait(lambda _: all(p in self.received() for p in pairs)),
                        "\n".join(self.lines.lines + self.errors.lines))
        got = self.received()
        for a, b in pairs:
            self.assertEqual(got[(a, b)]["text"], repr("from %d" % b))
            self.assertEqual(got[(a, b)]["binary"], repr(bytes([b, 0, 255])))
            self.assertEqual(got[(a, b)]["json"], repr({"from": b, "list": [1, "two"]}))
        starts = self.starts()
        masters = [i for i, (_, role) in starts.items() if role == "master"]
        self.assertEqual(len(masters), 1, starts)
        # Serving, and ready through the mesh connection (--ready notify: the ready record).
        self.assertTrue(self.errors.wait(lambda l: sum("is ready" in x for x in l) >= 3))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(b"hi\n")
            self.assertIn(int(c.makefile().readline()), [pid for pid, _ in starts.values()])

        # The master killed: the survivors see its streams end, its replacement (4) meets
        # both, and the oldest survivor is handed the master role (a master record).
        victim = masters[0]
        os.kill(starts[victim][0], signal.SIGKILL)
        survivors = [i for i in ids if i != victim]
        self.assertTrue(self.lines.wait(lambda _: all(
            (s, victim) in [(int(a), int(b)) for a, b, _ in self.lines.matching(r"END (\d+) (\d+) (\S+)")]
            for s in survivors)))
        ends = self.lines.matching(r"END (\d+) (\d+) (\S+)")
        self.assertTrue(all(code == "None" for _, _, code in ends), ends)  # peer_gone, no close frame
        self.assertTrue(self.lines.wait(lambda _: 4 in self.starts()))
        new_pairs = [(4, s) for s in survivors] + [(s, 4) for s in survivors]
        self.assertTrue(self.lines.wait(lambda _: all(p in self.received() for p in new_pairs)),
                        "\n".join(self.lines.lines))
        self.assertTrue(self.lines.wait(lambda _: self.lines.matching(r"MASTER (\d+)")))
        self.assertEqual(self.lines.matching(r"MASTER (\d+)"), [(str(min(survivors)),)])
        self.assertEqual(self.starts()[4][1], "-")  # the role was handed over, not given to the newcomer

        # A graceful stop: every worker stops, status 0, the private directory is gone.
        mesh_dirs = [name for name in os.listdir(self.directory.name) if name.startswith("mesh-")]
        self.assertEqual(len(mesh_dirs), 1)
        self.supervisor.send_signal(signal.SIGTERM)
        self.assertEqual(self.supervisor.wait(20), 0)
        self.lines.thread.join(5)
        self.assertEqual(len(self.lines.matching(r"STOPPED (\d+)")), 3)
        self.assertFalse(os.path.exists(os.path.join(self.directory.name, mesh_dirs[0])))

    def test_a_connection_to_a_worker_without_a_hello_is_closed(self):
        self.launch()
        self.assertTrue(self.lines.wait(lambda _: len(self.starts()) == 3))
        mesh = [name for name in os.listdir(self.directory.name) if name.startswith("mesh-")][0]
        path = os.path.join(self.directory.name, mesh, "1.sock")
        self.assertTrue(self.lines.wait(lambda _: os.path.exists(path)))
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(multinode.encode_value("no hello first") + b"\0" * 17)
            self.assertEqual(s.recv(100), b"")  # closed, and nothing delivered
        time.sleep(0.2)
        self.assertFalse(any(line.startswith("RECV 1") and "no hello" in line for line in self.lines.lines))

    def test_a_standby_waits_then_fills_a_killed_workers_slot_and_meshes(self):
        # Under the real supervisor: --standby 1 starts a third process that waits
        # (its standby record, ready, watchdogs) and serves nothing until the promote.
        self.launch("--standby", "1", "--heartbeat-timeout", "600", nodes=2)
        self.assertTrue(self.lines.wait(lambda _: len(self.starts()) == 3), "\n".join(self.errors.lines))
        self.assertTrue(self.errors.wait(lambda l: any("standby 3 (pid" in x and "waits" in x for x in l)),
                        "\n".join(self.errors.lines))
        time.sleep(1.5)  # beyond two heartbeat timeouts: its watchdog records keep it
        status = json.loads(subprocess.run([COMMAND, "status", "--json", "--control", self.control()],
                                           capture_output=True, text=True, timeout=15).stdout)
        self.assertEqual([(s["id"], s["state"]) for s in status["standby"]], [(3, "waiting")])
        self.assertEqual(sorted(w["id"] for w in status["workers"]), [1, 2])
        self.assertNotIn((3, 1), self.received())  # not meshed before its promotion
        starts = self.starts()
        victim_slot = [w["slot"] for w in status["workers"] if w["id"] == 2][0]
        os.kill(starts[2][0], signal.SIGKILL)
        self.assertTrue(self.lines.wait(lambda _: self.lines.matching(r"PROMOTED 3 (\d+) (\d+)")),
                        "\n".join(self.errors.lines))
        self.assertEqual(self.lines.matching(r"PROMOTED 3 (\d+) (\d+)")[0], (str(victim_slot), str(starts[3][0])))
        self.assertTrue(any("fills slot %d (promote record)" % victim_slot in x for x in self.errors.lines))
        self.assertTrue(self.lines.wait(lambda _: (1, 3) in self.received() and (3, 1) in self.received()))
        answered = set()
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
                c.sendall(b"hi\n")
                answered.add(int(c.makefile().readline()))
            if starts[3][0] in answered:
                break
        self.assertIn(starts[3][0], answered)
        self.assertTrue(self.lines.wait(lambda _: 4 in self.starts()))  # the next standby
        self.supervisor.send_signal(signal.SIGTERM)
        self.assertEqual(self.supervisor.wait(20), 0)

    def test_watchdog_records_keep_a_worker_that_beats_alive(self):
        # WATCHDOG_USEC = 600 ms: a worker that did not beat would be hung and replaced.
        self.launch("--heartbeat-timeout", "600")
        self.assertTrue(self.errors.wait(lambda l: sum("is ready" in x for x in l) >= 3))
        time.sleep(2)  # more than three timeouts
        self.assertFalse([x for x in self.errors.lines if "hung" in x], self.errors.lines)
        self.assertEqual(sorted(self.starts()), [1, 2, 3])
        status = subprocess.run([COMMAND, "status", "--json", "--control", self.control()], capture_output=True,
                                text=True, timeout=15)
        workers = json.loads(status.stdout)["workers"]
        self.assertEqual([w["state"] for w in workers], ["ready"] * 3)
        self.assertTrue(all(w["heartbeat_age_ms"] is not None and w["heartbeat_age_ms"] < 600 for w in workers))

    def test_the_master_role_survives_a_rolling_restart(self):
        self.launch()
        self.assertTrue(self.errors.wait(lambda l: sum("is ready" in x for x in l) >= 3))
        reload = subprocess.run([COMMAND, "reload", "--control", self.control()], capture_output=True, text=True,
                                timeout=15)
        self.assertEqual(reload.returncode, 0, reload.stdout + reload.stderr)
        # Every slot replaced: workers 4, 5, 6 serve, 1, 2, 3 exited.
        self.assertTrue(self.errors.wait(lambda l: sum("exited with status 0" in x for x in l) >= 3, 30),
                        "\n".join(self.errors.lines))
        self.assertTrue(self.lines.wait(lambda _: all(i in self.starts() for i in (4, 5, 6))))
        # Whoever holds the role now is one of the live ones, and only one: the holder
        # is the last to be named (a START as master, then MASTER records in order).
        holders = [int(i) for i, _, role in self.lines.matching(r"START (\d+) (\d+) (\S+)") if role == "master"]
        self.assertTrue(self.lines.wait(lambda _: any(int(i) > 3 for (i,) in self.lines.matching(r"MASTER (\d+)"))),
                        "\n".join(self.lines.lines + self.errors.lines))
        handed = [int(i) for (i,) in self.lines.matching(r"MASTER (\d+)")]
        self.assertEqual(len(holders), 1)
        self.assertTrue(handed, "the role was not handed over when its holder retired")
        self.assertIn(handed[-1], (4, 5, 6))
        self.assertEqual(len(set(handed)), len(handed))  # never handed twice to the same worker
        # And the new mesh is whole: every pair of 4, 5, 6 exchanged messages.
        pairs = [(a, b) for a in (4, 5, 6) for b in (4, 5, 6) if a != b]
        self.assertTrue(self.lines.wait(lambda _: all(p in self.received() for p in pairs)))

    def test_an_http_server_of_the_standard_library_is_served_and_stopped_gracefully(self):
        with open(os.path.join(self.directory.name, "http_worker.py"), "w") as f:
            f.write(HTTP_WORKER)
        self.launch(nodes=2, script="http_worker.py")
        self.assertTrue(self.errors.wait(lambda l: sum("is ready" in x for x in l) >= 2))
        # Both workers answer, each with its one peer once they met (bounded tries).
        seen = {}
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                answer = c.makefile("rb").read().decode()
            self.assertTrue(answer.startswith("HTTP/1.0 200"), answer)
            body = answer.split("\r\n\r\n", 1)[1]
            seen[body.split()[1]] = body
            if len(seen) == 2 and all(re.search(r"peers \[\d+\]$", b) for b in seen.values()):
                break
            time.sleep(0.02)
        self.assertEqual(sorted(seen), ["1", "2"], seen)
        self.assertEqual(sorted(seen.values()), ["worker 1 master peers [2]", "worker 2 - peers [1]"])
        self.supervisor.send_signal(signal.SIGTERM)
        self.assertEqual(self.supervisor.wait(20), 0)
        self.lines.thread.join(5)
        self.assertEqual(len(self.lines.matching(r"STOPPED (\d+)")), 2, "\n".join(self.lines.lines + self.errors.lines))


HTTP_WORKER = r'''
import http.server, multinode

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        nodes = self.server.nodes
        body = ("worker %d %s peers %s" % (nodes.id, "master" if nodes.is_master else "-",
                                            sorted(nodes.streams))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

async def main(nodes):
    print("START", nodes.id, "-", flush=True)
    state.append(nodes)

state = []
multinode.listen(Handler, on_node=lambda stream: None, main=main)
print("STOPPED", state[0].id, flush=True)
'''


STANDBY_WORKER = r'''
import asyncio, os, sys
# fd 3 as `multinode run` passes it: the test's listening socket, and LISTEN_PID this process.
fd = int(os.environ.pop("TEST_LISTEN_FD"))
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
import multinode

''' + CLIENT + r'''
async def main():
    nodes = await multinode.start()
    print("START", nodes.id, nodes.slot, nodes.standby, nodes.is_master, flush=True)
    nodes.on_promoted(lambda: print("PROMOTED", nodes.slot, nodes.standby, nodes.is_master, flush=True))
    nodes.on_master(lambda: print("MASTER", nodes.id, flush=True))
    nodes.on_node(lambda stream: print("NODE", stream.id, stream.slot, flush=True))
    await nodes.serve(client)
    print("SERVING", nodes.slot, flush=True)
    await nodes.wait_stopped()
    print("STOPPED", nodes.id, flush=True)

asyncio.run(main())
'''


class FakeSupervisor:
    """$MULTINODE_MESH/supervisor.sock: the records each connection sends, as
    (type, id, slot, value), and records written back to a connection."""

    def __init__(self, mesh):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(os.path.join(mesh, "supervisor.sock"))
        self.server.listen(8)
        self.connections, self.received, self.cond = [], [], threading.Condition()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with self.cond:
                self.connections.append(connection)
                self.received.append([])
                index = len(self.connections) - 1
                self.cond.notify_all()
            thread = threading.Thread(target=self._read, args=(connection, index), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _read(self, connection, index):
        data = b""
        while True:
            try:
                chunk = connection.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while len(data) >= 24:
                kind, _, peer, slot, _, value = struct.unpack("<HHIIIQ", data[:24])
                data = data[24:]
                with self.cond:
                    self.received[index].append((kind, peer, slot, value))
                    self.cond.notify_all()

    def records(self, index=0):
        with self.cond:
            return list(self.received[index]) if index < len(self.received) else []

    def wait(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def send(self, kind, peer, slot, value, index=0):
        self.connections[index].sendall(struct.pack("<HHIIIQ", kind, 0, peer, slot, 0, value))

    def close(self):
        # shutdown() wakes the threads blocked in accept() and recv(); close() would not.
        for sock in [self.server, *self.connections]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self.threads:
            thread.join(5)


class StandbyTest(unittest.TestCase):
    """A warm standby of `multinode run --standby K`, against a fake supervisor."""

    def setUp(self):
        self.directory = start_worker_dir()
        with open(os.path.join(self.directory.name, "standby.py"), "w") as f:
            f.write(STANDBY_WORKER)
        self.mesh = os.path.join(self.directory.name, "mesh")
        os.mkdir(self.mesh, 0o700)
        self.supervisor = FakeSupervisor(self.mesh)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.processes = []

    def tearDown(self):
        for process, lines in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(5)
            lines.thread.join(5)
            process.stdout.close()
            process.stderr.close()
        self.listener.close()
        self.supervisor.close()
        self.directory.cleanup()

    def start_standby(self, node_id, mesh=True, **extra):
        env = environment(MULTINODE_ID=str(node_id), MULTINODE_NODES="2", MULTINODE_STANDBY="1",
                          TEST_LISTEN_FD=str(self.listener.fileno()), **extra)
        if mesh:
            env["MULTINODE_MESH"] = self.mesh
        process = subprocess.Popen([PYTHON, os.path.join(self.directory.name, "standby.py")], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, pass_fds=[self.listener.fileno()])
        lines = Lines(process.stdout)
        self.processes.append((process, lines))
        return process, lines

    def test_it_waits_without_accepting_then_serves_and_joins_in_the_promoted_slot(self):
        process, lines = self.start_standby(5, WATCHDOG_USEC="200000")
        pid = process.pid
        R = multinode
        # standby, then ready (slot 0), then heartbeats in slot 0.
        self.assertTrue(self.supervisor.wait(lambda s: sum(r[0] == R.RECORD_WATCHDOG for r in s.records()) >= 2),
                        self.supervisor.records())
        got = self.supervisor.records()
        self.assertEqual(got[:2], [(R.RECORD_STANDBY, 5, 0, pid), (R.RECORD_READY, 5, 0, pid)])
        self.assertTrue(all(r == (R.RECORD_WATCHDOG, 5, 0, 0) for r in got[2:]), got)
        self.assertTrue(lines.wait(lambda l: any(x.startswith("START") for x in l)))
        self.assertEqual(lines.matching(r"^START (.*)$"), [("5 None True False",)])

        # Nothing accepts on fd 3 yet: the connection waits in the backlog, unanswered.
        waiting = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.addCleanup(waiting.close)
        waiting.sendall(b"hi\n")
        waiting.settimeout(1)
        with self.assertRaises(socket.timeout):
            waiting.recv(100)
        self.assertFalse([x for x in lines.lines if x.startswith(("SERVING", "PROMOTED"))], lines.lines)

        # A peer that joined earlier, listening on its mesh socket.
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(peer.close)
        peer.bind(os.path.join(self.mesh, "77.sock"))
        peer.listen(1)

        before = len(self.supervisor.records())
        self.supervisor.send(R.RECORD_PROMOTE, 5, 2, 1)
        self.assertTrue(lines.wait(lambda l: any(x.startswith("SERVING") for x in l)), lines.lines)
        self.assertEqual(lines.matching(r"^PROMOTED (.*)$"), [("2 False True",)])
        self.assertEqual(lines.matching(r"^MASTER (\d+)"), [("5",)])
        self.assertEqual(lines.matching(r"^SERVING (\d+)"), [("2",)])
        # The connection made while it waited is served now.
        waiting.settimeout(10)
        self.assertEqual(waiting.makefile().readline().strip(), str(pid))

        # The join with the new slot on the same connection, then ready, heartbeats in slot 2.
        self.assertTrue(self.supervisor.wait(lambda s: (R.RECORD_WATCHDOG, 5, 2, 0) in s.records()[before:]),
                        self.supervisor.records())
        after = self.supervisor.records()[before:]
        self.assertEqual(after[0], (R.RECORD_JOIN, 5, 2, pid))
        self.assertIn((R.RECORD_READY, 5, 2, pid), after)
        self.assertTrue(all(r[2] == 2 for r in after), after)
        self.assertEqual(len(self.supervisor.connections), 1)

        # A peer record now: it connects to 77.sock with a hello naming its new slot.
        self.supervisor.send(R.RECORD_PEER, 77, 3, 0)
        peer.settimeout(10)
        stream, _ = peer.accept()
        self.addCleanup(stream.close)
        stream.settimeout(10)
        hello = b""
        while len(hello) < 17:
            chunk = stream.recv(17 - len(hello))
            if not chunk:
                break
            hello += chunk
        self.assertEqual(hello, multinode.hello_frame(5, 2))
        self.assertTrue(lines.wait(lambda l: "NODE 77 3" in l))

        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(20), 0)
        lines.thread.join(5)
        self.assertIn("STOPPED 5", lines.lines)

    def test_promoted_without_the_role_it_is_no_master(self):
        process, lines = self.start_standby(6)
        self.assertTrue(self.supervisor.wait(lambda s: len(s.records()) >= 2))
        self.supervisor.send(multinode.RECORD_PROMOTE, 6, 1, 0)
        self.assertTrue(lines.wait(lambda l: any(x.startswith("SERVING") for x in l)), lines.lines)
        self.assertEqual(lines.matching(r"^PROMOTED (.*)$"), [("1 False False",)])
        self.assertFalse(lines.matching(r"^(MASTER)"))
        self.assertTrue(self.supervisor.wait(lambda s: (multinode.RECORD_JOIN, 6, 1, process.pid) in s.records()))
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(20), 0)

    def test_sigterm_while_waiting_exits_0_at_once_without_joining(self):
        process, lines = self.start_standby(7)
        self.assertTrue(self.supervisor.wait(lambda s: len(s.records()) >= 2))
        self.assertTrue(lines.wait(lambda l: any(x.startswith("START") for x in l)))
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)  # as to the process group: a second one
        self.assertEqual(process.wait(20), 0, process.stderr.read())
        self.assertEqual([r[0] for r in self.supervisor.records()], [multinode.RECORD_STANDBY, multinode.RECORD_READY])
        self.assertFalse([x for x in lines.lines if x.startswith(("SERVING", "STOPPED"))], lines.lines)

    def test_without_the_mesh_a_standby_says_that_standby_needs_it(self):
        process, lines = self.start_standby(8, mesh=False)
        self.assertNotEqual(process.wait(20), 0)
        error = process.stderr.read()
        self.assertIn("got no MULTINODE_MESH", error)
        self.assertIn("--standby needs", error)
        self.assertEqual(self.supervisor.records(), [])


if __name__ == "__main__":
    unittest.main()

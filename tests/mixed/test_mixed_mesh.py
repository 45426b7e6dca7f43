"""The mixed mesh of issue #10: one `multinode run` whose workers are a C++ program
on the library (slot 1), a Node.js one on clients/node (slot 2) and a Python one on
clients/python (slot 3), started by dispatch.sh. Every worker sends each peer a text,
a binary and a JSON message made from both ids and checks the three it gets
(tests/programs/run_node.cpp's protocol, repeated in worker.js and worker.py). Then
each language's worker in turn is killed with SIGKILL: the survivors see its stream
end, and its replacement (same slot and language, a new id) meshes with all of them.

Run by CTest (tests/CMakeLists.txt) with MULTINODE_COMMAND, MIXED_CXX_WORKER and
MULTINODE_NODE_CLIENT set; /usr/bin/python3, standard library only."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
COMMAND = os.environ.get("MULTINODE_COMMAND", "")
CXX_WORKER = os.environ.get("MIXED_CXX_WORKER", "")
NODE_CLIENT = os.environ.get("MULTINODE_NODE_CLIENT", os.path.join(SOURCE, "clients", "node"))
KINDS = ("text", "binary", "json")
LANGUAGE = {1: "C++", 2: "Node.js", 3: "Python"}
LINE = re.compile(r"^\[worker (\d+) slot (\d+) pid (\d+)\] (.*)$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Output:
    """The supervisor's stdout, read by a thread: (worker id, slot, pid, text) per line."""

    def __init__(self, stream):
        self.lines, self.raw, self.cond = [], [], threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            line = line.rstrip("\n")
            match = LINE.match(line)
            with self.cond:
                self.raw.append(line)
                if match:
                    self.lines.append((int(match[1]), int(match[2]), int(match[3]), match[4]))
                self.cond.notify_all()

    def wait(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def starts(self):
        """worker id -> (slot, pid, master) of every worker that said it started."""
        found = {}
        with self.cond:
            for worker, slot, pid, text in self.lines:
                match = re.match(r"started node (\d+) slot (\d+) master ([01])", text)
                if match and int(match[1]) == worker:
                    found[worker] = (slot, pid, match[3] == "1")
        return found

    def said(self, pattern):
        """(worker id, groups...) of every line of a worker matching pattern."""
        with self.cond:
            return [(w, *m.groups()) for w, _, _, t in self.lines for m in [re.fullmatch(pattern, t)] if m]

    def verified(self, receiver, sender):
        kinds = {kind for w, kind, s in self.said(r"verified (\w+) from (\d+)") if w == receiver and int(s) == sender}
        return all(kind in kinds for kind in KINDS)

    def ended(self, receiver, sender):
        return any(w == receiver and int(s) == sender for w, s in self.said(r"ended (\d+)"))


@unittest.skipUnless(os.access(COMMAND, os.X_OK) and os.access(CXX_WORKER, os.X_OK),
                     "MULTINODE_COMMAND and MIXED_CXX_WORKER must name the built programs")
class MixedMeshTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory(prefix="multinode-mixed-")
        self.control = os.path.join(self.directory.name, "control.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTINODE_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}
        env.update(MIXED_CXX_WORKER=CXX_WORKER, MIXED_DIR=HERE, MULTINODE_NODE_CLIENT=NODE_CLIENT,
                   PYTHONPATH=os.path.join(SOURCE, "clients", "python"), PYTHONDONTWRITEBYTECODE="1")
        self.supervisor = subprocess.Popen(
            [COMMAND, "run", "-n", "3", "--host", "127.0.0.1", "-p", str(free_port()), "--ready", "notify",
             "--control", self.control, "--",
             "/bin/sh", os.path.join(HERE, "dispatch.sh")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.output = Output(self.supervisor.stdout)
        self.errors = Output(self.supervisor.stderr)

    def tearDown(self):
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisor.pid, signal.SIGKILL)
                self.supervisor.wait(5)
        for reader, pipe in ((self.output, self.supervisor.stdout), (self.errors, self.supervisor.stderr)):
            reader.thread.join(5)
            pipe.close()
        self.directory.cleanup()

    def master_roles(self):
        """The workers `multinode status --json` says hold the master role."""
        status = subprocess.run([COMMAND, "status", "--json", "--control", self.control], capture_output=True,
                                text=True, timeout=15)
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        return [w["id"] for w in json.loads(status.stdout)["workers"] if w.get("master_role")]

    def explain(self):
        return "\n".join(self.output.raw[-80:] + self.errors.raw[-40:])

    def live(self, killed):
        """slot -> worker id of the live worker of each slot (the newest start of it)."""
        slots = {}
        for worker, (slot, _, _) in sorted(self.output.starts().items()):
            if worker not in killed:
                slots[slot] = worker
        return slots

    def assert_meshed(self, workers):
        pairs = [(a, b) for a in workers for b in workers if a != b]
        self.assertTrue(self.output.wait(lambda: all(self.output.verified(a, b) for a, b in pairs)),
                        "not every pair of %s verified text, binary and JSON:\n%s" % (workers, self.explain()))

    def test_cxx_node_and_python_workers_mesh_and_a_killed_one_is_replaced_in_the_mesh(self):
        self.assertTrue(self.output.wait(lambda: sorted(self.live(set())) == [1, 2, 3]), self.explain())
        first = self.live(set())
        self.assert_meshed(list(first.values()))
        masters = [w for w, (_, _, master) in self.output.starts().items() if master]
        self.assertEqual(len(masters), 1, self.output.starts())
        self.assertEqual(self.master_roles(), masters)  # what `multinode status` says too

        killed = set()
        for slot in (2, 3, 1):  # the Node.js worker, then the Python one, then the C++ one
            before = self.live(killed)
            victim = before[slot]
            os.kill(self.output.starts()[victim][1], signal.SIGKILL)
            killed.add(victim)
            survivors = [w for s, w in before.items() if s != slot]
            self.assertTrue(self.output.wait(lambda: all(self.output.ended(s, victim) for s in survivors)),
                            "the %s worker %d was killed; not every survivor saw its stream end:\n%s"
                            % (LANGUAGE[slot], victim, self.explain()))
            self.assertTrue(self.output.wait(lambda: self.live(killed).get(slot, victim) != victim), self.explain())
            replacement = self.live(killed)[slot]
            self.assert_meshed(survivors + [replacement])

        self.assertEqual(len(self.master_roles()), 1)  # handed over when its holder was killed
        self.assertEqual(self.output.said(r"unexpected message from (\d+)"), [])
        self.supervisor.send_signal(signal.SIGTERM)
        self.assertEqual(self.supervisor.wait(20), 0, self.explain())
        self.output.thread.join(5)
        stopped = {w for w, _, _, text in self.output.lines if text == "stopped"}
        self.assertEqual(stopped, set(self.live(killed).values()), self.explain())


if __name__ == "__main__":
    unittest.main(verbosity=2)

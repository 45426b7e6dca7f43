#!/usr/bin/python3
"""An HTTP server in Python (standard library only) for `multinode run`.

    multinode run -n 2 -p 8080 -- /usr/bin/python3 examples/run/python_http.py
    curl http://127.0.0.1:8080/      ->  Hello from node 3 (pid 4250)

Under `multinode run` (or systemd socket activation) the listening socket is
fd 3: LISTEN_FDS says how many sockets were passed, LISTEN_PID whose they are
(the worker's own pid, as sd_listen_fds(3) checks). Every worker serves the
same socket, which belongs to the supervisor: nothing is bound here. Without
LISTEN_FDS (or with another process's LISTEN_PID) the program binds
--host/--port itself, so that it also runs alone:

    /usr/bin/python3 examples/run/python_http.py --port 8080

GET / answers "Hello from node ID (pid PID)", ID being MULTINODE_ID (the
worker's id under multinode, unique for the supervisor's life; 0 when alone).
SIGTERM (what `multinode stop`, `multinode reload` and a recycle send) and SIGINT
stop it gracefully: no new connection is accepted, a request being answered is
answered (with "Connection: close"), a keep-alive connection between requests
gets STOP_GRACE_S (1 s, as the library's stop_grace) for one more request,
answered the same way, and is closed then (closing it at once would race with a
request already on its way), and the program exits with status 0 once every
connection is done.
"""

import os
import signal
import sys

# A SIGTERM that comes while the modules below are imported (a reload right after
# the start: with `--ready started` a worker counts as ready once it runs) is kept
# for later rather than killing the process: the stop is graceful from here on.
early_stop = []
for _number in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_number, lambda *_: early_stop.append(True))

import argparse  # noqa: E402
import http.server  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

SD_LISTEN_FDS_START = 3
STOP_GRACE_S = 1.0


def passed_listener():
    """The socket of fd 3 if it was passed to this process, else None."""
    fds = os.environ.get("LISTEN_FDS")
    if not fds:
        return None
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        # The variables were meant for another process (the parent that was
        # started with them, as sd_listen_fds(3) says): not ours to use.
        print(f"python_http: LISTEN_PID={os.environ.get('LISTEN_PID')} is not this process "
              f"({os.getpid()}): ignoring LISTEN_FDS", file=sys.stderr, flush=True)
        return None
    if int(fds) < 1:
        return None
    if int(fds) > 1:
        print(f"python_http: {fds} sockets passed, serving the first (fd 3) only",
              file=sys.stderr, flush=True)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


class Server(http.server.ThreadingHTTPServer):
    # One thread per connection; at the end, server_close() waits for all of them.
    daemon_threads = False
    block_on_close = True

    def __init__(self, listener, node_id):
        super().__init__(listener.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()  # the one ThreadingHTTPServer made: replaced by the listener
        self.socket = listener
        self.node_id = node_id
        self.stopping = threading.Event()
        self.stop_deadline = 0.0  # monotonic time by which idle connections are closed
        # Readable once stopping: wakes every connection waiting for its next request.
        self.wake_read, self.wake_write = os.pipe()

    def stop(self):
        if self.stopping.is_set():
            return
        self.stop_deadline = time.monotonic() + STOP_GRACE_S
        self.stopping.set()
        os.write(self.wake_write, b"x")
        # shutdown() waits for serve_forever() to return: not from its own thread.
        threading.Thread(target=self.shutdown).start()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 60                   # an idle or slow connection is closed after that

    def handle_one_request(self):
        # Wait for the next request: until the idle timeout, or, once stopping,
        # until the end of the grace. A request that has begun to arrive is answered.
        if not self._request_waiting():
            self.close_connection = True
            return
        super().handle_one_request()

    def _request_waiting(self):
        # Bytes already read into rfile's buffer (a pipelined request) count:
        # peek on the non-blocking socket returns them, or b"" with none.
        self.connection.setblocking(False)
        try:
            buffered = self.rfile.peek(1)
        except (BlockingIOError, InterruptedError):
            buffered = b""
        except OSError:
            return True  # a reset: handle_one_request() reads it and ends the connection
        finally:
            self.connection.settimeout(self.timeout)
        if buffered:
            return True
        server = self.server
        if not server.stopping.is_set():
            readable, _, _ = select.select([self.connection, server.wake_read], [], [], self.timeout)
            if self.connection in readable:
                return True
            if not server.stopping.is_set():
                return False  # idle for the whole timeout
        # Stopping: one more request within the grace.
        remaining = max(0.0, server.stop_deadline - time.monotonic())
        readable, _, _ = select.select([self.connection], [], [], remaining)
        return bool(readable)

    def do_GET(self):
        body = f"Hello from node {self.server.node_id} (pid {os.getpid()})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # no line per request (the supervisor relays every line)
        pass


def main():
    parser = argparse.ArgumentParser(description="HTTP hello server for multinode run (fd 3 from LISTEN_FDS)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind without LISTEN_FDS (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind without LISTEN_FDS (8080)")
    options = parser.parse_args()

    listener = passed_listener()
    if listener is None:
        listener = socket.create_server((options.host, options.port), reuse_port=False)
    # Non-blocking: the workers all wait on the same socket and each is woken for a
    # connection that only one of them gets; the others' accept() must not block
    # (socketserver skips the turn on BlockingIOError), or a stop would wait for
    # the next connection.
    listener.setblocking(False)
    node_id = os.environ.get("MULTINODE_ID", "0")
    server = Server(listener, node_id)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: server.stop())
    if early_stop:
        server.stop()
    host, port = listener.getsockname()[:2]
    print(f"python_http: node {node_id} (pid {os.getpid()}) serving http://{host}:{port}/", flush=True)
    server.serve_forever(poll_interval=0.5)
    server.server_close()  # closes this process's copy of the listener, waits for every connection
    print(f"python_http: node {node_id} (pid {os.getpid()}) stopped", flush=True)


if __name__ == "__main__":
    main()

"""The Python worker of the mixed mesh test (test_mixed_mesh.py): the protocol of
tests/programs/run_node.cpp, line for line, so that the three languages check each other."""
import asyncio
import os

import multinode


def text_for(sender, to):
    return "hello from node %d to node %d \u2713" % (sender, to)


def binary_for(sender, to):
    return bytes((i * 7 + sender * 31 + to) & 0xFF for i in range(300))


def json_for(sender, to):
    return {"from": sender, "to": to, "note": "\u00fcn\u00efc\u00f6d\u00e9"}


def say(line):
    print(line, flush=True)


async def answer(reader, writer):
    await reader.readline()
    writer.write(b"node %d pid %d\n" % (nodes.id, os.getpid()))
    await writer.drain()
    writer.close()


async def main():
    global nodes
    nodes = await multinode.start(port=0, host="127.0.0.1")
    me = nodes.id
    say("started node %d slot %d master %d" % (me, nodes.slot, 1 if nodes.is_master else 0))

    def on_node(stream):
        peer = stream.id
        frames = multinode.frame_stream(stream)
        say("peer %d slot %d" % (peer, stream.slot))

        def message(value):
            if isinstance(value, str) and value == text_for(peer, me):
                say("verified text from %d" % peer)
            elif isinstance(value, bytes) and value == binary_for(peer, me):
                say("verified binary from %d" % peer)
            elif isinstance(value, dict) and value == json_for(peer, me):
                say("verified json from %d" % peer)
            else:
                say("unexpected message from %d" % peer)

        frames.on_message = message
        frames.on_close = lambda code, reason: say("ended %d" % peer)
        frames.send(text_for(me, peer))
        frames.send(binary_for(me, peer))
        frames.send(json_for(me, peer))

    nodes.on_node(on_node)
    await nodes.serve(answer)
    await nodes.wait_stopped()
    say("stopped")


asyncio.run(main())

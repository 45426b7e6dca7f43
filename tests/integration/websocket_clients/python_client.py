# Debian's python3-websockets (10.4, for /usr/bin/python3) against websocket_echo:
# text, binary, fragments, a large message, ping/pong, the close. The client offers
# permessage-deflate (its default, compression="deflate"); with "deflate"
# (websocket_echo --deflate) the server must have agreed, and every exchange is compressed.
#   /usr/bin/python3 python_client.py PORT [deflate]   prints "ok" and exits 0, or exits 1 with what failed
import asyncio
import sys

import websockets


def fail(what):
    print(f"python client: {what}", file=sys.stderr)
    sys.exit(1)


async def main(port, deflate):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=2**21) as ws:
        extensions = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        if ("permessage-deflate" in extensions) != deflate:
            fail(f"permessage-deflate agreed: {extensions!r}")
        await ws.send("hello from python")
        if await ws.recv() != "hello from python":
            fail("text echo")
        await ws.send(b"\x00\xff\x10")
        if await ws.recv() != b"\x00\xff\x10":
            fail("binary echo")
        await ws.send(["fr", "ag", "ments \u00e9"])
        if await ws.recv() != "fragments \u00e9":
            fail("fragmented echo")
        large = bytes(range(256)) * 4000
        await ws.send(large)
        if await ws.recv() != large:
            fail("large echo")
        pong = await ws.ping(b"ping?")
        await asyncio.wait_for(pong, 5)
        await ws.close(4000, "done")
        if ws.close_code != 4000:
            fail(f"close code {ws.close_code}")
    print("ok")


asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), sys.argv[2:] == ["deflate"]), 20))

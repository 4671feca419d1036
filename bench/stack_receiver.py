"""Callback receiver for bench/stack_lifecycle.py: runs in a container on the stack's network.

HTTPS with basic auth on --port (the clients' callback-url), a plain-HTTP control port for the
benchmark (GET /stats, GET /dump, POST /mode). Standard library only: the image it runs in
(the reference messaging image) carries nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import ssl
import time


def take(buf: bytearray):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    if len(buf) < end + 4 + length:
        return None
    body = bytes(buf[end + 4:end + 4 + length])
    del buf[:end + 4 + length]
    return lines[0], headers, body


def reply(status: int, body: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


class State:
    def __init__(self, auth: bytes):
        self.expected = b"Basic " + base64.b64encode(auth)
        self.arrivals: dict[str, list] = {}  # messageId -> [first arrival, status, count]
        self.keys: dict[str, int] = {}  # Idempotency-Key -> deliveries answered 2xx
        self.stats = {"unauthorized": 0, "bad": 0, "refused_500": 0, "duplicate_keys": 0, "duplicate_ids": 0,
                      "abandoned": 0}
        self.fail_status = 0  # 0: accept; else answer this status
        self.delay = 0.0  # seconds before a callback is answered (a slow client endpoint)
        self.down = False
        self.server = None
        self.transports: set = set()


def callback_protocol(state: State):
    class Callback(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, bytearray()
            state.transports.add(transport)

        def connection_lost(self, exc):
            state.transports.discard(self.transport)

        def data_received(self, data):
            self.buf += data
            while (message := take(self.buf)) is not None:
                if state.delay > 0:
                    # Answers in order, each after the delay: the sender holds its lease meanwhile.
                    prev = getattr(self, "pending", None)
                    self.pending = asyncio.get_running_loop().create_task(self.later(prev, message))
                else:
                    self.transport.write(self.handle(*message))

        async def later(self, prev, message):
            if prev is not None:
                await prev
            await asyncio.sleep(state.delay)
            if self.transport.is_closing():
                # The sender went away before the answer (killed): not delivered, it will retry.
                state.stats["abandoned"] += 1
                return
            self.transport.write(self.handle(*message))

        def handle(self, first, headers, body):
            if not hmac.compare_digest(headers.get(b"authorization", b""), state.expected):
                state.stats["unauthorized"] += 1
                return reply(401)
            if state.fail_status:
                state.stats["refused_500"] += 1
                return reply(state.fail_status)
            try:
                doc = json.loads(body)
                mid = doc["messageId"]
            except (ValueError, KeyError, TypeError):
                state.stats["bad"] += 1
                return reply(400)
            key = headers.get(b"idempotency-key", b"").decode()
            if key in state.keys:
                state.stats["duplicate_keys"] += 1
            state.keys[key] = state.keys.get(key, 0) + 1
            seen = state.arrivals.get(mid)
            if seen is None:
                state.arrivals[mid] = [time.time(), doc.get("status"), 1, doc.get("type")]
            else:
                seen[2] += 1
                state.stats["duplicate_ids"] += 1
            return b"HTTP/1.1 204 No Content\r\n\r\n"
    return Callback


def control_protocol(state: State, start_server):
    class Control(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, bytearray()

        def data_received(self, data):
            self.buf += data
            while (message := take(self.buf)) is not None:
                first, _, body = message
                method, path = first.split(b" ")[:2]
                if path == b"/stats":
                    out = reply(200, json.dumps({"received": len(state.arrivals), **state.stats}).encode())
                elif path == b"/dump":
                    out = reply(200, json.dumps({"arrivals": state.arrivals, **state.stats}).encode())
                elif path == b"/reset" and method == b"POST":
                    state.arrivals.clear()
                    state.keys.clear()
                    state.stats = dict.fromkeys(state.stats, 0)
                    out = reply(200, b"{}")
                elif path == b"/mode" and method == b"POST":
                    mode = json.loads(body)
                    state.fail_status = int(mode.get("status", 0))
                    state.delay = float(mode.get("delay", 0))
                    asyncio.get_running_loop().create_task(set_down(state, bool(mode.get("down")), start_server))
                    out = reply(200, b"{}")
                else:
                    out = reply(404)
                self.transport.write(out)
    return Control


async def set_down(state: State, down: bool, start_server):
    if down and not state.down:
        state.down = True
        state.server.close()
        for transport in list(state.transports):
            transport.abort()
    elif not down and state.down:
        state.down = False
        await start_server()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--control-port", type=int, default=8080)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--auth-file", required=True)
    args = parser.parse_args()
    with open(args.auth_file, "rb") as handle:
        state = State(handle.read().strip())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()

    async def start_server():
        state.server = await loop.create_server(callback_protocol(state), "0.0.0.0", args.port, ssl=ctx,
                                                backlog=1024, reuse_address=True)

    await start_server()
    await loop.create_server(control_protocol(state, start_server), "0.0.0.0", args.control_port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

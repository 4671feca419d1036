"""A listener for connections relayed by a TCP proxy with the PROXY protocol (v1 or v2).

When the service terminates TLS itself, Traefik passes the encrypted stream through, and the
service would see every client as Traefik's address: the source allow-lists could not tell the
internet from the private network. Traefik then sends a PROXY protocol header first (in clear,
before the TLS handshake), which carries the client's address. Every connection to this
listener must start with one; a connection without it is closed. The header is read with
MSG_PEEK and consumed to the byte before the socket is handed to the event loop (and to TLS),
so that nothing after it is lost.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct

log = logging.getLogger("hermod.http")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
V2_MAX = 16 + 216  # header + addresses of the largest family (AF_UNIX) ...
V2_LIMIT = 16 + 4096  # ... plus TLVs, which are read and ignored, up to this


class ProxyHeaderError(ValueError):
    pass


def parse(data: bytes) -> tuple[int, str | None] | None:
    """(header length, client address or None for LOCAL/UNKNOWN), or None when more bytes are needed."""
    if data.startswith(V2_SIGNATURE[:len(data)]) and len(data) < 16:
        return None
    if data.startswith(V2_SIGNATURE):
        version_command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
        if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
            raise ProxyHeaderError("PROXY v2: bad version or command")
        if 16 + length > V2_LIMIT:
            raise ProxyHeaderError("PROXY v2: header too long")
        if len(data) < 16 + length:
            return None
        if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health check)
            return 16 + length, None
        body = data[16:16 + length]
        if family >> 4 == 1 and len(body) >= 12:
            return 16 + length, str(ipaddress.IPv4Address(body[:4]))
        if family >> 4 == 2 and len(body) >= 36:
            return 16 + length, str(ipaddress.IPv6Address(body[:16]))
        return 16 + length, None  # UNSPEC or AF_UNIX: no usable address
    if b"PROXY "[:len(data)] == data[:6]:
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) >= V1_MAX:
                raise ProxyHeaderError("PROXY v1: no line end")
            return None
        parts = data[:end].decode("ascii", "replace").split(" ")
        if len(parts) >= 2 and parts[1] == "UNKNOWN":
            return end + 2, None
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ProxyHeaderError("PROXY v1: malformed line")
        try:
            address = ipaddress.ip_address(parts[2])
        except ValueError:
            raise ProxyHeaderError("PROXY v1: bad source address") from None
        return end + 2, str(address)
    raise ProxyHeaderError("connection does not start with a PROXY protocol header")


async def _readable(loop, sock: socket.socket) -> None:
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def read_header(sock: socket.socket) -> str | None:
    """Consume the PROXY header from `sock` (non-blocking): the client address it names."""
    loop = asyncio.get_running_loop()
    while True:
        await _readable(loop, sock)
        data = sock.recv(V2_LIMIT, socket.MSG_PEEK)
        if not data:
            raise ProxyHeaderError("connection closed before the PROXY header")
        found = parse(data)
        if found is not None:
            length, address = found
            consumed = sock.recv(length)
            if len(consumed) != length:
                raise ProxyHeaderError("PROXY header changed between peek and read")
            return address


async def serve(protocol_factory, address: str, port: int, ssl_context, timeout: float, max_pending: int,
                backlog: int = 2048):
    """Listen on address:port (SO_REUSEPORT, as the main listener) for proxied connections;
    protocol_factory(client_address) makes the connection's protocol. At most `max_pending`
    connections wait for their header (each at most `timeout` seconds); more are closed.
    Returns the task accepting."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((address, port))
    listener.listen(backlog)
    listener.setblocking(False)

    async def handshake(conn: socket.socket, peer) -> None:
        try:
            async with asyncio.timeout(timeout):
                client = await read_header(conn)
            await loop.connect_accepted_socket(lambda: protocol_factory(client or peer[0]), conn, ssl=ssl_context)
        except (ProxyHeaderError, TimeoutError, OSError) as exc:
            log.debug("Proxied connection from %s refused: %s", peer[0], exc)
            conn.close()

    async def accept() -> None:
        pending: set[asyncio.Task] = set()
        try:
            while True:
                conn, peer = await loop.sock_accept(listener)
                if len(pending) >= max_pending:
                    conn.close()
                    continue
                conn.setblocking(False)
                task = loop.create_task(handshake(conn, peer))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            listener.close()
            for task in pending:
                task.cancel()

    return loop.create_task(accept())

"""A small keep-alive HTTP/1.1 client for callback POSTs.

Callbacks are the only outgoing requests of the service: one POST per delivery attempt to a
handful of configured targets. A general client (aiohttp's) cost a worker about 10 % of its
CPU on the hot path (cookie jar, tracing, per-request objects). This one does just that:
one pool of idle connections per origin, the request written in one piece, the response
parsed by llhttp (httptools, the parser behind uvicorn), its body read and dropped.

Host names are resolved once per host at a time and cached briefly (successes 10 s, failures
2 s): a burst of callbacks to a host whose lookup hangs must not fill the resolver threads,
which the database pool needs too.

Errors come back as CallbackError with a short reason ("timeout", "TLS: ...",
"connection: ..."): the dispatcher records it as the attempt's outcome and retries later.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from urllib.parse import quote, urlsplit

import httptools


class CallbackError(Exception):
    """The attempt did not get an HTTP response; str() is the reason recorded for it."""


class Target:
    """Where callbacks of one client go: origin, path prefix, Host and Authorization headers."""

    def __init__(self, base_url: str, authorization: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"callback URL {base_url!r}: must be http(s)://host[:port][/path]")
        if any(ch.isspace() or ord(ch) < 32 for ch in base_url):
            raise ValueError(f"callback URL {base_url!r}: must not contain whitespace or control characters")
        self.tls = parts.scheme == "https"
        # An internationalised host name goes on the wire in its ASCII (IDNA) form.
        self.host = parts.hostname.encode("idna").decode("ascii")
        self.port = parts.port or (443 if self.tls else 80)
        self.origin = (parts.scheme, self.host, self.port)
        self.path_prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = bracketed if parts.port is None else f"{bracketed}:{parts.port}"
        self.authorization = authorization


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time.

    A connection is reused only when its bytes were exactly one final response to the request
    sent: interim (1xx) responses are skipped, a body that ends with the connection is a
    complete response, and anything else (bytes after the response, bytes while idle, a 101)
    closes it, so that they can never be taken for the answer to the next callback."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.closed = loop.create_future()
        self.response: asyncio.Future | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.got_bytes = False
        self.status = 0
        self.delimited = False  # the response says where its body ends (length or chunked)
        self.final = False  # the headers of the final (non-1xx) response were read
        self.done = False  # the final response was read in full

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.response is None or self.done:
            self.transport.close()  # not an answer to anything sent on this connection
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            reason = exc.__context__ if isinstance(exc.__context__, CallbackError) else \
                CallbackError(f"connection: invalid HTTP response ({type(exc).__name__})")
            self._fail(reason)
            self.transport.close()

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(None)
        if exc is None and self.final and not self.delimited and not self.done:
            # No Content-Length, not chunked: the body ends with the connection (RFC 9112 6.3).
            self._complete(keep_alive=False)
            return
        self._fail(CallbackError(f"connection: {type(exc).__name__ if exc else 'closed by peer'}"))

    # httptools callbacks
    def on_message_begin(self):
        if self.done:
            raise CallbackError("connection: bytes after the response")

    def on_header(self, name: bytes, value: bytes):
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self):
        self.status = self.parser.get_status_code()
        if self.status == 101:
            raise CallbackError("connection: unexpected 101 Switching Protocols")
        if self.status >= 200:
            self.final = True
        else:
            self.delimited = False  # an interim response: the final one follows

    def on_message_complete(self):
        if self.final:
            self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        self.done = True
        if self.response is not None and not self.response.done():
            self.response.set_result((self.status, keep_alive))

    def _fail(self, exc: Exception) -> None:
        if self.response is not None and not self.response.done():
            self.response.set_exception(exc)

    async def request(self, data: bytes) -> tuple[int, bool]:
        self.response = self.loop.create_future()
        self.got_bytes = False
        self.status, self.delimited, self.final, self.done = 0, False, False, False
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(data)
        try:
            return await self.response
        finally:
            self.response = None

    @property
    def usable(self) -> bool:
        return not self.closed.done() and not self.transport.is_closing()


class CallbackClient:
    """POST JSON to targets over pooled keep-alive connections (at most `max_idle` per origin)."""

    def __init__(self, ssl_context: ssl.SSLContext | None, timeout: float, max_idle: int = 64):
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple, list[_Connection]] = {}
        self._addresses: dict[tuple, tuple[float, list[str] | OSError]] = {}  # (host, port) -> (until, result)
        self._lookups: dict[tuple, asyncio.Task] = {}

    async def post(self, target: Target, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status of the response; CallbackError when there is none."""
        head = [f"POST {target.path_prefix}{path} HTTP/1.1", f"Host: {target.host_header}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        if target.authorization:
            head.append(f"Authorization: {target.authorization}")
        head += [f"{name}: {value}" for name, value in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(target, data)
        except TimeoutError:
            raise CallbackError("timeout") from None
        except ssl.SSLError as exc:
            raise CallbackError(f"TLS: {type(exc).__name__}") from None
        except OSError as exc:
            raise CallbackError(f"connection: {type(exc).__name__}") from None

    async def _exchange(self, target: Target, data: bytes) -> int:
        idle = self._idle.setdefault(target.origin, [])
        while idle:
            conn = idle.pop()
            if not conn.usable:
                continue
            try:
                return await self._send(conn, idle, data)
            except CallbackError:
                # The peer closed an idle connection before reading this request: nothing was
                # answered, so sending it once more on a new connection is safe.
                if conn.got_bytes:
                    raise
        conn = await self._connect(target)
        return await self._send(conn, idle, data)

    async def _send(self, conn: _Connection, idle: list, data: bytes) -> int:
        try:
            status, keep_alive = await conn.request(data)
        except BaseException:
            conn.transport.close()
            raise
        if keep_alive and conn.usable and len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.transport.close()
        return status

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        last_error = None
        for address in await self._resolve(target.host, target.port):
            try:
                # Connect to the address; TLS still checks the certificate against the host name.
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), address, target.port,
                    ssl=self.ssl_context if target.tls else None,
                    server_hostname=target.host if target.tls else None)
                return conn
            except ssl.SSLError:
                raise
            except OSError as exc:  # refused or unreachable: try the host's next address
                last_error = exc
        raise last_error or OSError(f"no address for {target.host}")

    async def _resolve(self, host: str, port: int) -> list[str]:
        key = (host, port)
        cached = self._addresses.get(key)
        if cached is not None and cached[0] > time.monotonic():
            if isinstance(cached[1], OSError):
                raise cached[1]
            return cached[1]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.get_running_loop().create_task(self._lookup(host, port))
            lookup.add_done_callback(self._lookup_done)
        # shield: a caller's timeout must not cancel the lookup the other callers wait for
        return await asyncio.shield(lookup)

    def _lookup_done(self, lookup: asyncio.Task) -> None:
        for key, task in list(self._lookups.items()):
            if task is lookup:
                del self._lookups[key]
        if not lookup.cancelled():
            lookup.exception()  # retrieved here: when every waiter timed out, nobody else reads it

    async def _lookup(self, host: str, port: int) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self._addresses[(host, port)] = (time.monotonic() + 2, exc)
            raise
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        self._addresses[(host, port)] = (time.monotonic() + 10, addresses)
        return addresses

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.transport.close()
        self._idle.clear()

"""A lean HTTP/1.1 server for the service: keep-alive, pipelining, bounds, one write per response.

Why not aiohttp's server: on the hot path (accept a command, device fetch, device answer) its
request and response machinery cost more worker CPU than the handlers themselves. This server
keeps what the service needs and nothing else:

- parsing by llhttp (httptools, the parser behind uvicorn): chunked bodies, pipelining and
  request smuggling checks (conflicting Content-Length / Transfer-Encoding) are llhttp's;
- every resource a client can make it hold is bounded, whatever the client does:
  - the request head is counted as its bytes arrive (llhttp buffers a header line until it is
    complete, so counting complete headers alone would let one endless line grow without
    limit): 431 as soon as the head passes MAX_HEAD, 414 for the URL alone;
  - the body: 413 before reading a declared length over `max_body`, or as soon as a chunked
    body (its framing and trailers included) passes it;
  - output: the transport's write buffer has a high-water mark; above it the connection stops
    answering and reading until the peer reads, and a peer that stops reading for
    `idle_timeout` is aborted (a graceful close would wait for a buffer that never drains);
  - time: `head_timeout` from the first byte of a request to the end of its head,
    `body_timeout` for the body, `idle_timeout` between requests (408 or close, by a sweep);
  - connections: at most `max_connections` per worker; one more gets 503 and is closed;
  - requests read ahead of the one being answered: MAX_QUEUED, then reading pauses;
- requests on one connection are answered in order; `Expect: 100-continue` is answered only
  when the body may come and only once the responses before it are on the wire;
- trailer fields of a chunked body are read and dropped, never merged into the headers;
- `Upgrade` (h2c, websocket) is ignored: the request is answered over HTTP/1.1 and the
  connection closed after it;
- on shutdown, requests in progress finish (up to a timeout), idle connections are closed,
  and what is still stuck after the timeout is aborted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
import time
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote

import httptools

from .messages import HttpError, Request, Response, error

log = logging.getLogger("hermod.http")

MAX_HEAD = 16 * 1024
# Requests read ahead of the one being answered before the connection stops reading.
MAX_QUEUED = 8
# Requests one read may hold beyond that (reading pauses between reads, not inside one): the
# ones over this are not answered, and the connection is closed after the last one that is.
MAX_PIPELINED = 32
# After an error answer, how long what the client still sends is read and dropped, so that
# closing does not reset the connection before the client has read the answer.
LINGER = 2.0
# Bytes waiting in a connection's write buffer above which it stops answering and reading.
WRITE_HIGH_WATER = 64 * 1024
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_LINGER_OFF = struct.pack("ii", 1, 0)

# Where a connection is in the request it is reading.
_IDLE, _HEAD, _BODY = 0, 1, 2


class HttpServer:
    """The connections of one listening socket of a worker, their sweep and their shutdown."""

    def __init__(self, router, max_body: int, *, idle_timeout: float = 75.0, head_timeout: float = 20.0,
                 body_timeout: float = 60.0, max_connections: int = 4096,
                 unavailable=None):
        self.router = router
        # Classifies a handler's exception as a dependency being away (503 + Retry-After)
        # rather than a fault of the service (500).
        self.unavailable = unavailable or (lambda exc: False)
        self._away_logged_at = 0.0
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.connections: set[HttpProtocol] = set()
        self._date = ""
        self._date_at = 0

    def date(self) -> str:
        now = int(time.time())
        if now != self._date_at:
            self._date, self._date_at = formatdate(now, usegmt=True), now
        return self._date

    async def handle(self, request: Request) -> Response:
        try:
            handler, request.match_info = self.router.resolve(request.method, request.path)
            return await handler(request)
        except HttpError as exc:
            return error(request, exc.status, exc.message, exc.headers)
        except Exception as exc:
            if self.unavailable(exc):
                # One line a second at most: an outage would otherwise log every request.
                now = time.monotonic()
                if now - self._away_logged_at >= 1.0:
                    self._away_logged_at = now
                    log.warning("Answering 503: a dependency is unavailable (%s: %s)", type(exc).__name__, exc)
                return error(request, 503, "service temporarily unavailable", {"Retry-After": "1"})
            log.exception("Unhandled error on %s %s", request.method, request.path)
            return error(request, 500, "internal error")

    @property
    def sweep_interval(self) -> float:
        # A quarter of the shortest timeout: a limit is enforced within 25 % of its value.
        return max(0.05, min(5.0, min(self.idle_timeout, self.head_timeout, self.body_timeout) / 4))

    async def sweep(self) -> None:
        """Enforce the timeouts of every connection."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.close_if_stale(now)

    async def shutdown(self, timeout: float) -> None:
        for conn in list(self.connections):
            conn.close_when_done()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HttpServer, peer: str | None = None):
        self.server = server
        self.transport = None
        self.peer = peer or ""  # given: the client's address from a PROXY protocol header
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False
        self.closing = False
        self.state = _IDLE
        self.phase_started = self.last_active = time.monotonic()
        self.wire = 0  # bytes received in the current phase (see data_received)
        self.boundary = False
        self.continue_due = False
        self.reading_paused = False
        self.write_paused = False
        self.drained: asyncio.Future | None = None
        self.last_request: Request | None = None
        self.lingering = False
        self.flooded = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        if not self.peer:
            peer = transport.get_extra_info("peername")
            self.peer = peer[0] if isinstance(peer, tuple) else ""
        if len(self.server.connections) >= self.server.max_connections:
            self._write(error(None, 503, "too many connections"), keep_alive=False)
            transport.close()
            return
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        self.closing = True
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)  # lets the answering task see the closed transport

    def pause_writing(self):
        self.write_paused = True
        self._update_reading()

    def resume_writing(self):
        self.write_paused = False
        self.last_active = time.monotonic()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self._update_reading()

    def data_received(self, data):
        if self.lingering or self.flooded:
            return
        self.last_active = time.monotonic()
        self.boundary = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # A limit checked in one of the callbacks below (llhttp wraps what they raise).
            refusal = exc.__context__
            if not isinstance(refusal, HttpError):
                log.error("HTTP parser callback failed: %r", refusal)
                refusal = HttpError(500, "internal error")
            self._refuse(refusal.status, refusal.message)
            return
        except httptools.HttpParserUpgrade:
            self._ignore_upgrade()
            return
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")
            return
        if self.boundary:
            # A request head or body ended in this read: the counters restarted in the callbacks,
            # and what follows in it (at most one read) is counted from the next read on.
            return
        self.wire += len(data)
        if self.state == _BODY:
            # Chunk framing and trailers count too: a body never holds more than this.
            if self.wire > self.server.max_body + MAX_HEAD:
                self._refuse(413, f"request body larger than {self.server.max_body} bytes")
        elif self.wire > MAX_HEAD:
            self._refuse(431, "request header fields too large")

    # llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self):
        self.state = _HEAD
        self.phase_started = time.monotonic()
        self.wire = 0
        self.boundary = True
        self._reset()

    def on_url(self, url: bytes):
        self.url += url
        self.head_size += len(url)
        if self.head_size > MAX_HEAD:
            raise HttpError(414, "request URL too long")

    def on_header(self, name: bytes, value: bytes):
        self.head_size += len(name) + len(value)
        if self.head_size > MAX_HEAD:
            raise HttpError(431, "request header fields too large")
        if self.state != _HEAD:
            return  # a trailer field: never a header (an X-Api-Key in a trailer counts for nothing)
        key = name.decode("latin-1").lower()
        if key not in self.headers:  # the first of repeated headers counts
            self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self):
        self.state = _BODY
        self.phase_started = time.monotonic()
        self.wire = 0
        self.boundary = True
        declared = self.headers.get("content-length")
        if declared is not None and int(declared) > self.server.max_body:
            raise HttpError(413, f"request body larger than {self.server.max_body} bytes")
        if "upgrade" in self.headers and (declared not in (None, "0") or "transfer-encoding" in self.headers) \
                and "upgrade" in self.headers.get("connection", "").lower():
            # llhttp hands what follows the head of an upgrade request to the new protocol: the
            # body would be lost, and the request answered as if it had none.
            raise HttpError(400, "a request asking for a protocol upgrade must not carry a body")
        if self.headers.get("expect", "").lower() == "100-continue" and self.parser.get_http_version() != "1.0":
            if self.busy or self.queue:
                self.continue_due = True  # after the responses before it (see _answer_queue)
            else:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes):
        self.continue_due = False  # the client did not wait for it
        self.body_size += len(body)
        if self.body_size > self.server.max_body:  # chunked: no length declared up front
            raise HttpError(413, f"request body larger than {self.server.max_body} bytes")
        self.body.append(body)

    def on_message_complete(self):
        self.state = _IDLE
        self.boundary = True
        self.continue_due = False
        try:
            path = unquote(httptools.parse_url(self.url).path.decode("latin-1"), errors="strict")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            raise HttpError(400, "malformed request URL") from None
        request = Request(self.parser.get_method().decode("ascii"), path, self.headers,
                          b"".join(self.body), self.parser.should_keep_alive(),
                          self.parser.get_http_version() == "1.0", self.peer)
        if self.flooded:
            return
        if len(self.queue) >= MAX_PIPELINED:
            # A pipelining flood in one read: answer what is queued, then close.
            self.flooded = True
            self.queue[-1].keep_alive = False
            self.transport.pause_reading()
            self.reading_paused = True
            return
        self.last_request = request
        self.queue.append(request)
        if len(self.queue) >= MAX_QUEUED:
            self._update_reading()
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._answer_queue())

    # answering -------------------------------------------------------------------------------

    def _update_reading(self) -> None:
        """Read while there is room for requests and the peer reads what is written."""
        pause = len(self.queue) >= MAX_QUEUED or self.write_paused
        if pause != self.reading_paused and not self.transport.is_closing():
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    async def _answer_queue(self) -> None:
        handle = self.server.handle
        try:
            while self.queue and not self.transport.is_closing():
                if self.write_paused:
                    self.drained = asyncio.get_running_loop().create_future()
                    await self.drained
                    self.drained = None
                    continue
                request = self.queue.popleft()
                if self.reading_paused:
                    self._update_reading()
                response = await handle(request)
                keep_alive = request.keep_alive and not self.closing
                self._write(response, keep_alive, head_only=request.method == "HEAD", http_10=request.http_10)
                if not keep_alive:
                    if self.flooded:
                        # The peer is still sending the rest of its flood: a plain close with
                        # unread input resets the connection and can destroy the answers.
                        self._linger_close()
                    else:
                        self.transport.close()
                elif self.continue_due and not self.queue:
                    self.continue_due = False
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        finally:
            self.busy = False
            self.last_active = time.monotonic()

    def _write(self, response: Response, keep_alive: bool, head_only: bool = False, http_10: bool = False) -> None:
        if self.transport.is_closing():
            return
        body = response.body
        lines = [f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, 'Unknown')}",
                 f"Date: {self.server.date()}", "Server: hermod-ref",
                 f"Content-Type: {response.content_type}", f"Content-Length: {len(body)}"]
        if response.headers:
            lines += [f"{name}: {value}" for name, value in response.headers.items()]
        if not keep_alive:
            lines.append("Connection: close")
        elif http_10:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.transport.write(head if head_only else head + body)

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be parsed or is over a limit: answer it and close."""
        self.queue.clear()
        if self.busy or self.transport.is_closing():
            self.transport.close()
            return
        self._write(error(None, status, message), keep_alive=False)
        self._linger_close()

    def _linger_close(self) -> None:
        """Lingering close: send what is written and a FIN, drop what still comes for LINGER
        seconds. A close with unread input would reset the connection, and the reset can destroy
        the answers before the client reads them."""
        if not self.transport.can_write_eof():  # TLS
            self.transport.close()
            return
        self.lingering = True
        self.state = _IDLE
        self.transport.write_eof()
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER, self._end_linger)

    def _end_linger(self) -> None:
        if not self.transport.is_closing():
            if self.transport.get_write_buffer_size():
                self.abort()
            else:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection and everything queued for it, the kernel's send buffer included:
        a reset (SO_LINGER 0), not a FIN after the data the peer will not read."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
            except OSError:
                pass
        self.transport.abort()

    def _ignore_upgrade(self) -> None:
        """Upgrade (h2c, websocket): answer the request over HTTP/1.1, then close.

        llhttp stops at the end of such a request (what follows would be the new protocol),
        so the connection cannot carry another HTTP/1.1 request."""
        if self.transport.is_closing():
            return
        self.transport.pause_reading()
        self.reading_paused = True
        if self.last_request is not None and (self.busy or self.queue):
            self.last_request.keep_alive = False
        else:
            self.transport.close()

    # lifecycle -------------------------------------------------------------------------------

    def close_if_stale(self, now: float) -> None:
        if self.lingering:
            return
        idle = now - self.last_active
        if self.transport.is_closing() or self.write_paused:
            # Output the peer does not read: abort rather than wait for it forever.
            if idle > self.server.idle_timeout:
                self.abort()
            return
        if self.state == _HEAD and not self.reading_paused:
            if now - self.phase_started > self.server.head_timeout:
                self._refuse(408, "request head not received in time")
        elif self.state == _BODY and not self.reading_paused:
            if now - self.phase_started > self.server.body_timeout:
                self._refuse(408, "request body not received in time")
        elif not self.busy and not self.queue and idle > self.server.idle_timeout:
            self.transport.close()

    def close_when_done(self) -> None:
        """Shutdown: answer what is being answered, with Connection: close; close idle ones now."""
        self.closing = True
        if not self.busy:
            self.transport.close()

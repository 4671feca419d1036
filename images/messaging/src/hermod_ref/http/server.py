"""A lean HTTP/1.1 server for the service: routing, keep-alive, limits, one write per response.

Why not aiohttp's server: on the hot path (accept a command, device fetch, device answer) its
request and response machinery cost more worker CPU than the handlers themselves. This server
keeps what the service needs and nothing else:

- parsing by llhttp (httptools, the parser behind uvicorn): chunked bodies, pipelining and
  request smuggling checks (conflicting Content-Length / Transfer-Encoding) are llhttp's;
- limits: request head 16 KiB (431), body `max_body` (413, before reading a declared length),
  `Expect: 100-continue` answered only when the body may come;
- requests on one connection answered in order; keep-alive connections idle for longer than
  `keepalive_timeout`, and requests whose head or body takes longer than `request_timeout`,
  are closed by a sweep;
- on shutdown, requests in progress finish (up to a timeout), idle connections are closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
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
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class HttpServer:
    """The connections of one worker's listening socket, their sweep and their shutdown."""

    def __init__(self, router: Router, max_body: int, keepalive_timeout: float = 75.0,
                 request_timeout: float = 60.0):
        self.router = router
        self.max_body = max_body
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
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
        except Exception:
            log.exception("Unhandled error on %s %s", request.method, request.path)
            return error(request, 500, "internal error")

    async def sweep(self) -> None:
        """Close connections idle past keepalive_timeout, or stuck in a request past request_timeout."""
        while True:
            await asyncio.sleep(5)
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
            conn.transport.close()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False
        self.closing = False
        self.in_request = False
        self.last_active = time.monotonic()
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
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        self.closing = True

    def data_received(self, data):
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # A limit checked in one of the callbacks below (llhttp wraps what they raise).
            refusal = exc.__context__
            if not isinstance(refusal, HttpError):
                log.error("HTTP parser callback failed: %r", refusal)
                refusal = HttpError(500, "internal error")
            self._refuse(refusal.status, refusal.message)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrade is not supported")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    # llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self):
        self.in_request = True
        self.request_started = time.monotonic()
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
        key = name.decode("latin-1").lower()
        if key not in self.headers:  # the first of repeated headers counts
            self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self):
        declared = self.headers.get("content-length")
        if declared is not None and int(declared) > self.server.max_body:
            raise HttpError(413, f"request body larger than {self.server.max_body} bytes")
        if self.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes):
        self.body_size += len(body)
        if self.body_size > self.server.max_body:  # chunked: no length declared up front
            raise HttpError(413, f"request body larger than {self.server.max_body} bytes")
        self.body.append(body)

    def on_message_complete(self):
        self.in_request = False
        try:
            path = unquote(httptools.parse_url(self.url).path.decode("latin-1"), errors="strict")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            raise HttpError(400, "malformed request URL") from None
        request = Request(self.parser.get_method().decode("ascii"), path, self.headers,
                          b"".join(self.body), self.parser.should_keep_alive(),
                          self.parser.get_http_version() == "1.0")
        self.queue.append(request)
        if len(self.queue) >= MAX_QUEUED:
            self.transport.pause_reading()
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._answer_queue())

    # answering -------------------------------------------------------------------------------

    async def _answer_queue(self) -> None:
        try:
            while self.queue and not self.transport.is_closing():
                request = self.queue.popleft()
                if len(self.queue) == MAX_QUEUED - 1:
                    self.transport.resume_reading()
                response = await self.server.handle(request)
                keep_alive = request.keep_alive and not self.closing
                self._write(response, keep_alive, head_only=request.method == "HEAD", http_10=request.http_10)
                if not keep_alive:
                    self.transport.close()
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
        if not self.busy:
            self._write(error(None, status, message), keep_alive=False)
        self.transport.close()

    # lifecycle -------------------------------------------------------------------------------

    def close_if_stale(self, now: float) -> None:
        if self.busy:
            return
        if self.in_request and now - self.request_started > self.server.request_timeout:
            self._refuse(408, "request not completed in time")
        elif not self.in_request and now - self.last_active > self.server.keepalive_timeout:
            self.transport.close()

    def close_when_done(self) -> None:
        """Shutdown: answer what is being answered, with Connection: close; close idle ones now."""
        self.closing = True
        if not self.busy:
            self.transport.close()

"""A database outage is told apart from a fault: 503 + Retry-After instead of 500."""

from __future__ import annotations

import asyncio
import errno
import json
import socket

import asyncpg
import pytest

from hermod_ref.http.routing import Router
from hermod_ref.http.server import HttpProtocol, HttpServer
from hermod_ref.store.availability import database_unavailable


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ConnectionResetError(),
    socket.gaierror(-2, "Name or service not known"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    asyncio.TimeoutError(),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions._base.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
])
def test_outages_are_unavailable(exc):
    assert database_unavailable(exc)


@pytest.mark.parametrize("exc", [
    RuntimeError("bug"),
    KeyError("x"),
    FileNotFoundError(errno.ENOENT, "missing"),
    OSError(errno.ENOSPC, "No space left on device"),
    asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.UndefinedTableError("relation does not exist"),
])
def test_faults_stay_faults(exc):
    assert not database_unavailable(exc)


def _serve(raise_exc):
    router = Router()

    async def handler(request):
        raise raise_exc

    router.add("POST", "/command/ping", handler)

    async def main():
        server = HttpServer(router, 100, unavailable=database_unavailable)
        listener = await asyncio.get_running_loop().create_server(lambda: HttpProtocol(server), "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.sockets[0].getsockname()[1])
            writer.write(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            headers = {k.lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in head.decode().split("\r\n")[1:] if line)}
            body = await reader.readexactly(int(headers["content-length"]))
            writer.close()
            return int(head.split()[1]), headers, json.loads(body)
        finally:
            listener.close()
            await server.shutdown(timeout=1)

    return asyncio.run(main())


def test_a_request_during_an_outage_gets_503_with_retry_after():
    status, headers, body = _serve(asyncpg.CannotConnectNowError("the database system is shutting down"))
    assert status == 503 and headers["retry-after"] == "1"
    assert body["message"] == "service temporarily unavailable" and body["path"] == "/command/ping"


def test_a_bug_still_gets_500():
    status, headers, body = _serve(asyncpg.UniqueViolationError("duplicate key"))
    assert status == 500 and "retry-after" not in headers and body["message"] == "internal error"

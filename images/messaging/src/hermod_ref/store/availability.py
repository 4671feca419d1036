"""Which failures mean "the database is away", not "this request is wrong".

A request that fails because PostgreSQL is restarting, unreachable or shutting down is answered
503 with Retry-After: the same request succeeds once the database is back. In nearly every case
the command was not stored; only a connection lost during the commit itself leaves the outcome
unknown (as with any 5xx). Every other failure stays a 500 (a bug to look at)."""

from __future__ import annotations

import asyncio
import errno
import socket

import asyncpg

# Connection-level failures (SQLSTATE class 08 and the shutdown codes of class 57P) and the
# client's own view of a lost or unobtainable connection.
_AWAY = (
    ConnectionError,                           # refused, reset, aborted
    socket.gaierror,                           # the database's host name does not resolve (yet)
    asyncio.TimeoutError,                      # pool acquire or connect timed out
    asyncpg.PostgresConnectionError,           # class 08
    asyncpg.CannotConnectNowError,             # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,                # 57P01
    asyncpg.CrashShutdownError,                # 57P02
    asyncpg.ConnectionDoesNotExistError,       # the connection went away mid-query
    asyncpg.InterfaceError,                    # "connection is closed", pool closing
    # How asyncpg reports a connection that died in the middle of an operation: its protocol is
    # left mid-operation ("cannot switch to state 12; another operation (2) is in progress").
    # Seen on every PostgreSQL restart under load.
    asyncpg.exceptions._base.InternalClientError,
)


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _AWAY):
        return True
    # Other OS errors (a missing file, a full disk) are faults, not an outage.
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE

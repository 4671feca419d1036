"""Connection pool to PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import asyncpg

from ..config import Database

log = logging.getLogger("hermod.db")


def ssl_context(db: Database) -> ssl.SSLContext | bool:
    """What asyncpg gets as `ssl` for the JDBC URL's sslmode (pgjdbc's meanings):
    verify-full: the server's chain must lead to the sslrootcert CA and its certificate must
    name the host of the URL; verify-ca: the chain only; require: encrypted, the server not
    verified; disable: no TLS (False, so asyncpg does not try TLS on its own)."""
    if db.sslmode == "disable":
        return False
    if db.sslmode == "require":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if db.sslmode not in ("verify-ca", "verify-full"):
        raise ValueError(f"unknown sslmode {db.sslmode!r}")
    # Only the given CA: no system store, as a managed database's CA is the provider's own.
    ctx = ssl.create_default_context(cafile=db.sslrootcert)
    ctx.check_hostname = db.sslmode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def connect_kwargs(db: Database) -> dict:
    return dict(host=db.host, port=db.port, database=db.name, user=db.user, password=db.password or None,
                ssl=ssl_context(db))


async def connect_with_retry(db: Database, deadline_s: float):
    """One connection, retried while the database container is still starting."""
    end = time.monotonic() + deadline_s
    delay = 0.5
    while True:
        try:
            return await asyncpg.connect(timeout=5, **connect_kwargs(db))
        except ssl.SSLError:
            raise  # a refused certificate does not get better by waiting
        except (OSError, asyncpg.CannotConnectNowError, asyncio.TimeoutError) as exc:
            if time.monotonic() + delay > end:
                raise
            log.warning("Database %s:%s not reachable yet (%s); retrying", db.host, db.port, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


async def _keep_session(conn) -> None:
    """Pool release hook. asyncpg still rolls back an open transaction first; what it
    skips is its default `RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`
    round trip after every query. The service never sets session state (no SET, LISTEN,
    cursors outside transactions or advisory locks), so there is nothing to reset."""


def _preparer(statements: tuple[str, ...]):
    """Pool `init` hook: prepares `statements` once on each new connection. The first use of a
    statement on a connection makes asyncpg introspect the types of its parameters (uuid[],
    text[], ...), a catalogue query of several milliseconds per connection and type; done when
    the connection opens, it is not paid by the requests of the first seconds under load."""
    async def prepare(conn) -> None:
        for sql in statements:
            await conn.prepare(sql)
    return prepare


async def create_pool(db: Database, prepare: tuple[str, ...] = ()):
    """pool-size connections, all opened at start-up and kept: a pool that grows on demand
    opens connections (a server process, authentication, type introspection) exactly when a
    burst of load arrives, and asyncpg's defaults close a connection idle for 300 s and
    replace each one after 50,000 queries, which repeats that cost in the middle of the load."""
    return await asyncpg.create_pool(min_size=db.pool_size, max_size=db.pool_size, timeout=10,
                                     max_inactive_connection_lifetime=0, max_queries=2**62,
                                     init=_preparer(prepare), reset=_keep_session, **connect_kwargs(db))

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
    """A pool of up to pool-size connections. It grows on demand, and with hermod.database.pool-warm
    it is filled at start-up instead: a pool that grows on demand opens its connections (a
    server process, authentication, type introspection) exactly when the first burst of load
    arrives. Off by default: replicas that all fill their pools at once (a swarm, a rolling
    update running old and new side by side) take the server's connection slots whatever their
    load. Connections idle for asyncpg's 300 s close; asyncpg's replacement of each connection
    after 50,000 queries, a reconnection in the middle of the load, is off."""
    pool = await asyncpg.create_pool(min_size=1, max_size=db.pool_size, timeout=10, max_queries=2**62,
                                     init=_preparer(prepare), reset=_keep_session, **connect_kwargs(db))
    if db.pool_warm:
        await warm(pool, db.pool_size)
    return pool


async def warm(pool, size: int) -> int:
    """Open the pool's other connections before the first request; returns how many are open.
    Best effort: a server at its connection limit (other replicas, a rolling update that runs
    old and new side by side) refuses some, and the service starts anyway with fewer, the pool
    growing on demand later, as without the warm-up."""
    held = []
    try:
        while len(held) < size:
            held.append(await pool.acquire(timeout=10))
    except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
        log.warning("Database pool: %d of %d connections opened at start-up (%s); the rest open on demand",
                    len(held), size, type(exc).__name__)
    finally:
        for conn in held:
            await pool.release(conn)
    return len(held)

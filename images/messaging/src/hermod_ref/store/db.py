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


async def create_pool(db: Database):
    return await asyncpg.create_pool(min_size=1, max_size=db.pool_size, timeout=10, reset=_keep_session,
                                     **connect_kwargs(db))

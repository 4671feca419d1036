"""Callback delivery: claim due callbacks under a lease, POST them, record the outcome.

Every worker of every node runs one. `FOR UPDATE SKIP LOCKED` plus a lease longer than
twice the HTTP timeout means two nodes never hold the same callback at once; a node
that dies mid-delivery lets its lease run out and another node retries (at-least-once,
so every POST carries `Idempotency-Key: <callback id>`). Outcomes are written back in
one statement per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import aiohttp

from . import metrics, store
from .config import Config
from .release import Release

log = logging.getLogger("hermod.callbacks")


def backoff(attempts: int, initial: float, cap: float, rng=random.random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, never above cap."""
    delay = min(cap, initial * (2 ** max(0, attempts - 1)))
    return delay / 2 + rng() * delay / 2


class Dispatcher:
    def __init__(self, cfg: Config, pool, release: Release, ssl_ctx, node: str):
        self.cfg = cfg
        self.pool = pool
        self.release = release
        self.ssl_ctx = ssl_ctx
        self.node = node
        self.wake = asyncio.Event()
        self._stopping = False
        self._auth = {cid: aiohttp.BasicAuth(*c.basic_auth) if c.basic_auth else None
                      for cid, c in cfg.clients.items()}

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl_ctx, limit=self.cfg.callback_concurrency)
        timeout = aiohttp.ClientTimeout(total=self.cfg.callback_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            while not self._stopping:
                try:
                    claimed = await self.pool.fetch(store.CLAIM, self.node, self.cfg.callback_lease,
                                                    self.cfg.callback_batch_size)
                except Exception as exc:  # database away: keep trying, readiness reports it
                    log.warning("Claiming callbacks failed: %s", type(exc).__name__)
                    await asyncio.sleep(self.cfg.callback_poll_interval)
                    continue
                if claimed:
                    await self._deliver_batch(claimed)
                    if len(claimed) == self.cfg.callback_batch_size:
                        continue
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.cfg.callback_poll_interval)
                    # let a burst of answers gather into one claim
                    await asyncio.sleep(0.005)
                except asyncio.TimeoutError:
                    pass

    async def _deliver_batch(self, rows) -> None:
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        ok_ids, ok_status = [], []
        retry_ids, delays, errors, statuses = [], [], [], []
        now = time.time()
        for row, (status, error, duration) in zip(rows, results):
            if error is None:
                ok_ids.append(row["id"])
                ok_status.append(status)
                metrics.DELIVERED.labels(row["callback_type"]).inc()
                metrics.LIFECYCLE.observe(max(0.0, now - row["created"]))
            else:
                retry_ids.append(row["id"])
                delays.append(backoff(row["attempts"], self.cfg.callback_initial_backoff,
                                      self.cfg.callback_max_backoff))
                errors.append(error[:500])
                statuses.append(status)
        try:
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    if ok_ids:
                        if self.release.records_attempts:
                            await conn.execute(store.MARK_DELIVERED_1_1, ok_ids, ok_status)
                        else:
                            await conn.execute(store.MARK_DELIVERED, ok_ids)
                    if retry_ids:
                        if self.release.records_attempts:
                            changed = await conn.fetch(store.MARK_RETRY_1_1, retry_ids, delays, errors,
                                                       self.cfg.callback_max_age, self.node, statuses)
                        else:
                            changed = await conn.fetch(store.MARK_RETRY, retry_ids, delays, errors,
                                                       self.cfg.callback_max_age, self.node)
                        for row in changed:
                            if row["state"] == "failed":
                                metrics.FAILED.inc()
                                log.error("Callback %s given up after max-age", row["id"])
                            else:
                                metrics.ATTEMPT_FAILED.inc()
                    if self.release.records_attempts:
                        await conn.execute(
                            store.RECORD_ATTEMPTS, [r["id"] for r in rows], [r["attempts"] for r in rows],
                            [self.node] * len(rows), [int(d * 1000) for _, _, d in results],
                            [s for s, _, _ in results], [None if e is None else e[:500] for _, e, _ in results])
        except Exception as exc:
            # The leases run out and the callbacks are delivered again: at-least-once.
            log.warning("Recording callback outcomes failed (%s); they will be retried", type(exc).__name__)

    async def _deliver(self, row) -> tuple[int | None, str | None, float]:
        """(http status, error or None, seconds) of one attempt."""
        client = self.cfg.clients.get(row["client_id"])
        if client is None:
            return None, "client no longer configured", 0.0
        url = f"{client.callback_url}/callback/{row['callback_type']}"
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(row["id"]),
                   "X-Hermod-Message-Id": str(row["command_id"]), "X-Hermod-Attempt": str(row["attempts"])}
        start = time.perf_counter()
        try:
            async with self.session.post(url, data=row["body"].encode(), headers=headers,
                                         auth=self._auth.get(client.client_id)) as resp:
                await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            return None, "timeout", time.perf_counter() - start
        except aiohttp.ClientSSLError as exc:
            return None, f"TLS: {type(exc).__name__}", time.perf_counter() - start
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"connection: {type(exc).__name__}", time.perf_counter() - start
        duration = time.perf_counter() - start
        metrics.DELIVERY_LATENCY.observe(duration)
        if 200 <= status < 300:
            return status, None, duration
        return status, f"HTTP {status}", duration


class Sweeper:
    """Expire commands past their deadline and queue their timeout callbacks."""

    def __init__(self, cfg: Config, pool, dispatcher: Dispatcher):
        self.cfg = cfg
        self.pool = pool
        self.dispatcher = dispatcher
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        while not self._stopping:
            try:
                rows = await self.pool.fetch(store.EXPIRE, 500)
            except Exception as exc:
                log.warning("Expiring commands failed: %s", type(exc).__name__)
                rows = []
            if rows:
                metrics.EXPIRED.inc(len(rows))
                self.dispatcher.wake.set()
                if len(rows) == 500:
                    continue
            await asyncio.sleep(self.cfg.expiry_poll_interval)

"""Callback delivery: claim due callbacks under a lease, POST them, record the outcome.

Every worker of every node runs one. `FOR UPDATE SKIP LOCKED` plus a lease that the
holder renews every third of it while the delivery lasts means two nodes never hold the
same callback at once; a node that dies mid-delivery stops renewing, its lease runs out
within one lease period and another node retries (at-least-once, so every POST carries
`Idempotency-Key: <callback id>`). Outcomes of attempts that end
together are written back in one statement.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time

from .. import metrics
from ..config import Config
from ..release import Release
from ..store import queries, retention
from ..store.batching import Batcher
from .callback_client import CallbackClient, CallbackError, Target

log = logging.getLogger("hermod.callbacks")
retention_log = logging.getLogger("hermod.retention")


def backoff(attempts: int, initial: float, cap: float, rng=random.random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, never above cap."""
    delay = min(cap, initial * (2 ** max(0, attempts - 1)))
    return delay / 2 + rng() * delay / 2


class Dispatcher:
    """Claims due callbacks in batches and delivers them concurrently over pooled
    keep-alive connections (callback_client.py). Claiming is pipelined: the next batch
    is claimed while deliveries are in flight, up to `concurrency` of them, and each
    outcome is recorded as soon as its attempt ends, outcomes ending together in one
    statement (queries.record_outcomes_sql through a Batcher). So a slow or dead callback
    target holds up its own callbacks only."""

    def __init__(self, cfg: Config, pool, release: Release, ssl_ctx, node: str):
        self.cfg = cfg
        self.pool = pool
        self.release = release
        self.node = node
        self.wake = asyncio.Event()
        self._stopping = False
        self._inflight = 0
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._held: set = set()  # ids of the callbacks this worker is delivering (lease renewed)
        self._record_sql = queries.record_outcomes_sql(release.records_attempts)
        self.outcomes = Batcher(self._record_many, None, max_batch=500, max_inflight=2)
        # per client, computed once: where to POST and the Authorization header
        self._targets = {cid: Target(c.callback_url, _basic_auth(*c.basic_auth) if c.basic_auth else None)
                         for cid, c in cfg.clients.items()}
        self.client = CallbackClient(ssl_ctx, cfg.callback_timeout, max_idle=cfg.callback_concurrency)
        self._delivered: dict[str, object] = {}

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        self._slot_free.set()

    async def run(self) -> None:
        renewer = asyncio.create_task(self._renew_loop())
        try:
            await self._claim_loop()
        finally:
            # in-flight deliveries (and answers holding a reservation) finish and their
            # outcomes are recorded (SIGTERM too)
            while self._inflight > 0:
                self._slot_free.clear()
                await self._slot_free.wait()
            renewer.cancel()
            self.client.close()

    async def _renew_loop(self) -> None:
        """Every third of the lease, extend the leases of the deliveries in flight."""
        interval = self.cfg.callback_lease / 3
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            try:
                await self.pool.execute(queries.RENEW, list(self._held), self.node, self.cfg.callback_lease)
            except Exception as exc:  # noqa: BLE001 - database away: the lease may run out, delivery is at-least-once
                log.warning("Renewing %d callback lease(s) failed: %s", len(self._held), type(exc).__name__)

    def reserve(self) -> bool:
        """A delivery slot for a callback about to be queued already claimed by this node
        (queries.ANSWER with a lease owner); False when full or stopping: then the callback
        is queued unclaimed and the claim loop picks it up."""
        if self._stopping or self._inflight >= self.cfg.callback_concurrency:
            return False
        self._inflight += 1
        return True

    def unreserve(self) -> None:
        self._inflight -= 1
        self._slot_free.set()

    def deliver_claimed(self, row: dict) -> None:
        """Deliver a callback this node holds the lease of, in a slot from reserve()."""
        task = asyncio.create_task(self._attempt(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim_loop(self) -> None:
        limit = self.cfg.callback_concurrency
        while not self._stopping:
            room = min(self.cfg.callback_batch_size, limit - self._inflight)
            if room <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                claimed = await self.pool.fetch(queries.CLAIM, self.node, self.cfg.callback_lease, room)
            except Exception as exc:  # database away: keep trying, readiness reports it
                log.warning("Claiming callbacks failed: %s", type(exc).__name__)
                await asyncio.sleep(self.cfg.callback_poll_interval)
                continue
            for row in claimed:
                self._inflight += 1
                task = asyncio.create_task(self._attempt(row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if claimed and len(claimed) == room:
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.cfg.callback_poll_interval)
                # let a burst of answers gather into one claim
                await asyncio.sleep(0.005)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self, row) -> None:
        self._held.add(row["id"])
        try:
            result = await self._deliver(row)
            await self.outcomes.submit((row, result))
        except Exception as exc:  # noqa: BLE001 - the lease runs out and it is retried
            log.warning("Callback %s: recording the outcome failed (%s)", row["id"], type(exc).__name__)
        finally:
            self._held.discard(row["id"])
            self._inflight -= 1
            self._slot_free.set()

    async def _record_many(self, items) -> list:
        """Write the outcomes of attempts that ended together; one statement."""
        ok_ids, ok_status = [], []
        retry_ids, delays, errors, statuses = [], [], [], []
        for row, (status, error, _) in items:
            if error is None:
                ok_ids.append(row["id"])
                ok_status.append(status)
            else:
                retry_ids.append(row["id"])
                delays.append(backoff(row["attempts"], self.cfg.callback_initial_backoff,
                                      self.cfg.callback_max_backoff))
                errors.append(error[:500])
                statuses.append(status)
        args = [ok_ids, ok_status, retry_ids, delays, errors, statuses, self.cfg.callback_max_age, self.node]
        if self.release.records_attempts:
            args += [[row["id"] for row, _ in items], [row["attempts"] for row, _ in items],
                     [int(d * 1000) for _, (_, _, d) in items], [s for _, (s, _, _) in items],
                     [None if e is None else e[:500] for _, (_, e, _) in items]]
        try:
            changed = await self.pool.fetch(self._record_sql, *args)
        except Exception as exc:
            # The leases run out and the callbacks are delivered again: at-least-once.
            log.warning("Recording %d callback outcome(s) failed (%s); they will be retried",
                        len(items), type(exc).__name__)
            return [None] * len(items)
        now = time.time()
        for row, (_, error, _) in items:
            if error is None:
                counter = self._delivered.get(row["callback_type"])
                if counter is None:
                    counter = self._delivered[row["callback_type"]] = metrics.DELIVERED.labels(row["callback_type"])
                counter.inc()
                metrics.LIFECYCLE.observe(max(0.0, now - row["created"]))
        for row in changed:
            if row["state"] == "failed":
                metrics.FAILED.inc()
                log.error("Callback %s given up after max-age", row["id"])
            else:
                metrics.ATTEMPT_FAILED.inc()
        return [None] * len(items)

    async def _deliver(self, row) -> tuple[int | None, str | None, float]:
        """(http status, error or None, seconds) of one attempt."""
        target = self._targets.get(row["client_id"])
        if target is None:
            return None, "client no longer configured", 0.0
        headers = {"Idempotency-Key": str(row["id"]), "X-Hermod-Message-Id": str(row["command_id"]),
                   "X-Hermod-Attempt": str(row["attempts"])}
        start = time.perf_counter()
        try:
            status = await self.client.post(target, f"/callback/{row['callback_type']}", row["body"].encode(), headers)
        except CallbackError as exc:
            return None, str(exc), time.perf_counter() - start
        duration = time.perf_counter() - start
        metrics.DELIVERY_LATENCY.observe(duration)
        if 200 <= status < 300:
            return status, None, duration
        return status, f"HTTP {status}", duration


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class Sweeper:
    """Expire commands past their deadline and queue their timeout callbacks; and, every
    hermod.retention.poll-interval, delete finished commands older than
    hermod.retention.period (store/retention.py)."""

    def __init__(self, cfg: Config, pool, dispatcher: Dispatcher):
        self.cfg = cfg
        self.pool = pool
        self.dispatcher = dispatcher
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await asyncio.gather(self._expire_loop(), self._retention_loop())

    async def _expire_loop(self) -> None:
        while not self._stop.is_set():
            try:
                rows = await self.pool.fetch(queries.EXPIRE, 500)
            except Exception as exc:
                log.warning("Expiring commands failed: %s", type(exc).__name__)
                rows = []
            if rows:
                metrics.EXPIRED.inc(len(rows))
                self.dispatcher.wake.set()
                if len(rows) == 500:
                    continue
            await self._pause(self.cfg.expiry_poll_interval)

    async def _retention_loop(self) -> None:
        if self.cfg.retention_period <= 0:
            return
        interval = self.cfg.retention_poll_interval
        # Every worker of every node sweeps; a random start spreads them over the interval.
        await self._pause(random.random() * interval)
        while not self._stop.is_set():
            await self.sweep_retention()
            await self._pause(interval)

    async def sweep_retention(self) -> int:
        """One retention sweep; the number of commands deleted (those of the batches that
        completed, when a later one failed)."""
        deleted = 0

        def done(count: int) -> None:
            nonlocal deleted
            deleted += count

        try:
            await retention.purge(self.pool, self.cfg.retention_period, stopping=self._stop.is_set,
                                  progress=done)
        except Exception as exc:
            retention_log.warning("Deleting finished commands failed: %s", type(exc).__name__)
        if deleted:
            metrics.RETENTION_DELETED.inc(deleted)
            retention_log.info("Retention: deleted %d finished command(s) older than %ss with their callbacks",
                               deleted, self.cfg.retention_period)
        return deleted

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

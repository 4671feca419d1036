"""Group concurrent single-row statements of the hot path into one statement per batch.

Under load many requests want the same statement at the same moment (insert a command,
fetch a command). One round trip and one commit for all of them costs PostgreSQL and
the worker a fraction of N separate ones, and with synchronous_commit on it is group
commit: one WAL flush for the batch. At low load a request is sent on the next turn of
the event loop, alone, so nothing waits for a batch to fill.

A batch that fails as a whole (say one row violates a constraint) is retried row by row,
so one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Sequence

log = logging.getLogger("hermod.batching")


class Batcher:
    """submit(item) -> result, with at most `max_inflight` statements in flight.

    run_many(items) returns one result per item (same order); an item's result may be
    an exception instance, raised to that item's caller only. run_one(item) is the
    single-row fallback after a failed batch.
    """

    def __init__(self, run_many: Callable[[list], Awaitable[Sequence[Any]]],
                 run_one: Callable[[Any], Awaitable[Any]] | None = None,
                 max_batch: int = 256, max_inflight: int = 2):
        self.run_many = run_many
        self.run_one = run_one
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._inflight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0  # statements sent (for tests and the benchmark)

    async def submit(self, item):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        self._schedule(loop)
        return await fut

    def _schedule(self, loop) -> None:
        if not self._scheduled and self._pending and self._inflight < self.max_inflight:
            self._scheduled = True
            # next turn of the loop: requests parsed in this turn join the same batch
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and self._inflight < self.max_inflight:
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # caller gone
            if not batch:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch) -> None:
        items = [item for item, _ in batch]
        try:
            self.batches += 1
            try:
                results = await self.run_many(items)
            except Exception as exc:
                if self.run_one is None or len(items) == 1:
                    raise
                log.debug("Batch of %d failed (%s); retrying row by row", len(items), type(exc).__name__)
                results = []
                for item in items:
                    try:
                        results.append(await self.run_one(item))
                    except Exception as one_exc:  # noqa: BLE001 - handed to that item's caller
                        results.append(one_exc)
            for (_, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - every caller must hear of it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("batch cancelled"))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._inflight -= 1
            self._schedule(asyncio.get_running_loop())

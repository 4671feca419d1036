"""Retention: delete finished commands older than hermod.retention.period.

A command is finished when it is answered or expired and no callback of it is still
pending (delivered, failed, or none). Its callbacks and their attempts go with it
(ON DELETE CASCADE). Open commands and pending callbacks are never deleted, whatever
their age; device keys (hermod_device_key) are not touched.

Command ids are UUIDv7 (ids.py), so `id < uuid_bound(cutoff)` is a range of the primary
key index: a sweep reads the old end of the index only. created_at is checked as well,
so a row is judged by its real age. Rows with the random (v4) ids of earlier releases
sort anywhere: the few below the bound are deleted when old enough, the rest (almost all
of them) are above it and not reached; README.md gives the one-off statement for them.
"""

from __future__ import annotations

import time

from ..ids import uuid_bound

BATCH = 1000

# One batch. SKIP LOCKED: several workers and nodes sweep side by side, each taking rows
# the others do not hold. An answered or expired command never gets a new callback and a
# callback never becomes pending again, so what this statement sees finished stays so.
PURGE = """
WITH doomed AS (
    SELECT c.id FROM hermod_command c
     WHERE c.id < $1
       AND c.created_at < now() - make_interval(secs => $2)
       AND c.state IN ('answered', 'expired')
       AND NOT EXISTS (SELECT 1 FROM hermod_callback b
                        WHERE b.command_id = c.id AND b.state = 'pending')
     ORDER BY c.id
     LIMIT $3
       FOR UPDATE OF c SKIP LOCKED
)
DELETE FROM hermod_command c USING doomed WHERE c.id = doomed.id
"""


async def purge(pool, period: int, batch: int = BATCH, stopping=lambda: False, progress=None) -> int:
    """Delete finished commands created more than `period` seconds ago, `batch` rows per
    statement while batches come back full; returns how many were deleted (period 0: none).
    progress(n) hears of each batch as it commits (each statement is its own transaction)."""
    if period <= 0:
        return 0
    total = 0
    while not stopping():
        bound = uuid_bound(time.time() - period)
        status = await pool.execute(PURGE, bound, float(period), batch)
        deleted = int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"
        total += deleted
        if progress is not None:
            progress(deleted)
        if deleted < batch:
            break
    return total

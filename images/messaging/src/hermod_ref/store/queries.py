"""SQL for the command lifecycle. One statement per step where possible: round trips
are the cost that matters on the hot path."""

from __future__ import annotations

INSERT_COMMAND = """
INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce, userid,
                            response_format, payload, timeout_seconds, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
RETURNING expires_at
"""

# Fetch is one-time: it moves the command to 'fetched' and starts the response deadline.
FETCH_COMMAND = """
UPDATE hermod_command
   SET state = 'fetched', fetched_at = now(),
       expires_at = now() + make_interval(secs => timeout_seconds)
 WHERE reference = $1 AND state = 'pending' AND expires_at > now()
RETURNING id, command_type, nonce, userid, response_format, payload, expires_at
"""

# The batched forms of the two statements above (batching.py): one statement for all the
# commands accepted, or fetched, in one turn of a worker's event loop.
INSERT_COMMANDS = """
INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce, userid,
                            response_format, payload, timeout_seconds, expires_at)
SELECT id, client_id, client_group, command_type, reference, nonce, userid, response_format, payload,
       timeout_seconds, now() + make_interval(secs => lifespan)
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::int[], $11::float8[])
       AS r(id, client_id, client_group, command_type, reference, nonce, userid, response_format, payload,
            timeout_seconds, lifespan)
RETURNING id, expires_at
"""

FETCH_COMMANDS = """
UPDATE hermod_command c
   SET state = 'fetched', fetched_at = now(),
       expires_at = now() + make_interval(secs => c.timeout_seconds)
  FROM (SELECT DISTINCT unnest($1::text[]) AS reference) r
 WHERE c.reference = r.reference AND c.state = 'pending' AND c.expires_at > now()
RETURNING c.reference, c.id, c.command_type, c.nonce, c.userid, c.response_format, c.payload, c.expires_at
"""


RESPONSE_CONTEXTS = """
SELECT c.reference, c.id, c.client_id, c.client_group, c.command_type, c.nonce, c.userid,
       c.response_format, c.state, c.expires_at > now() AS live, k.jwk
  FROM hermod_command c
  LEFT JOIN hermod_device_key k ON k.client_group = c.client_group AND k.userid = c.userid
 WHERE c.reference = ANY($1::text[])
"""

# ANSWER for a batch. Two answers to one command in one batch: the UPDATE takes one of
# them, and only that one gets its callback id back (the other is refused, as it would
# be one after the other). Two device keys for one user in one batch make ON CONFLICT
# fail the statement: the batch is then retried row by row (batching.py).
ANSWERS = """
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[])
                  AS r(command_id, callback_id, body, jwk, lease_owner)
), done AS (
    UPDATE hermod_command c SET state = 'answered', answered_at = now()
      FROM r
     WHERE c.id = r.command_id AND c.state = 'fetched' AND c.expires_at > now()
    RETURNING c.id, c.client_id, c.client_group, c.command_type, c.userid, r.callback_id, r.body, r.jwk,
              r.lease_owner
), key AS (
    INSERT INTO hermod_device_key (client_group, userid, jwk, command_id)
    SELECT client_group, userid, jwk, id FROM done WHERE jwk IS NOT NULL
    ON CONFLICT (client_group, userid)
    DO UPDATE SET jwk = EXCLUDED.jwk, command_id = EXCLUDED.command_id, registered_at = now()
)
INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body, lease_owner, lease_until, attempts)
SELECT callback_id, id, client_id, command_type, body, lease_owner,
       CASE WHEN lease_owner IS NOT NULL THEN now() + make_interval(secs => $6) END,
       CASE WHEN lease_owner IS NOT NULL THEN 1 ELSE 0 END
  FROM done
RETURNING id
"""

class Commands:
    """The hot-path statements on commands, batched per worker (see batching.py)."""

    def __init__(self, pool, max_batch: int = 256, max_inflight: int = 2):
        from .batching import Batcher

        self.pool = pool
        self.inserts = Batcher(self._insert_many, self._insert_one, max_batch, max_inflight)
        self.fetches = Batcher(self._fetch_many, self._fetch_one, max_batch, max_inflight)
        self.contexts = Batcher(self._context_many, self._context_one, max_batch, max_inflight)
        self.answers = Batcher(self._answer_many, self._answer_one, max_batch, max_inflight)

    async def insert(self, *row):
        """row = (id, client_id, group, type, reference, nonce, userid, format, payload, timeout, lifespan);
        returns expires_at."""
        return await self.inserts.submit(row)

    async def fetch(self, reference: str):
        """The fetched command's row, or None if it is not pending (one-time: of several
        fetches of one reference at once, exactly one gets the row)."""
        return await self.fetches.submit(reference)

    async def context(self, reference: str):
        """What a device response is checked against (RESPONSE_CONTEXT), or None."""
        return await self.contexts.submit(reference)

    async def answer(self, command_id, callback_id, body: str, device_jwk: str | None,
                     lease_owner: str | None = None, lease: float = 60.0):
        """ANSWER: the callback id if this answer was taken, None if it lost (answered or expired).
        With lease_owner the callback is queued claimed by that node for `lease` seconds."""
        return await self.answers.submit((command_id, callback_id, body, device_jwk, lease_owner, float(lease)))

    async def _insert_many(self, rows):
        cols = list(zip(*rows))
        got = await self.pool.fetch(INSERT_COMMANDS, *cols[:10], [float(x) for x in cols[10]])
        expires = {r["id"]: r["expires_at"] for r in got}
        return [expires[row[0]] for row in rows]

    async def _insert_one(self, row):
        return await self.pool.fetchval(INSERT_COMMAND, *row[:10], float(row[10]))

    async def _fetch_many(self, references):
        got = {r["reference"]: r for r in await self.pool.fetch(FETCH_COMMANDS, references)}
        # a reference twice in one batch: the first caller gets the command, the second a refusal
        return [got.pop(ref, None) for ref in references]

    async def _fetch_one(self, reference):
        return await self.pool.fetchrow(FETCH_COMMAND, reference)

    async def _context_many(self, references):
        got = {r["reference"]: r for r in await self.pool.fetch(RESPONSE_CONTEXTS, references)}
        return [got.get(ref) for ref in references]

    async def _context_one(self, reference):
        return await self.pool.fetchrow(RESPONSE_CONTEXT, reference)

    async def _answer_many(self, items):
        cols = list(zip(*items))
        # one lease length per worker: the batch uses the longest asked for
        taken = {r["id"] for r in await self.pool.fetch(ANSWERS, *cols[:5], max(cols[5]))}
        return [item[1] if item[1] in taken else None for item in items]

    async def _answer_one(self, item):
        return await self.pool.fetchval(ANSWER, *item)


# Why a fetch or a response was refused (only run on the unhappy path).
COMMAND_STATE = """
SELECT state, expires_at > now() AS live FROM hermod_command WHERE reference = $1
"""

RESPONSE_CONTEXT = """
SELECT c.id, c.client_id, c.client_group, c.command_type, c.nonce, c.userid,
       c.response_format, c.state, c.expires_at > now() AS live, k.jwk
  FROM hermod_command c
  LEFT JOIN hermod_device_key k ON k.client_group = c.client_group AND k.userid = c.userid
 WHERE c.reference = $1
"""

# Answer, queue the callback and (for provisioning) register the device key, atomically.
# With $5 (a node name) the callback is queued already claimed by that node, as CLAIM
# would (lease $6 s, attempt 1): the answering worker delivers it at once, without a
# claim round trip; if that node dies, the lease runs out and any node delivers it.
# The state condition makes a concurrent second answer or the expiry sweeper lose cleanly.
ANSWER = """
WITH done AS (
    UPDATE hermod_command SET state = 'answered', answered_at = now()
     WHERE id = $1 AND state = 'fetched' AND expires_at > now()
    RETURNING id, client_id, client_group, command_type, userid
), key AS (
    INSERT INTO hermod_device_key (client_group, userid, jwk, command_id)
    SELECT client_group, userid, $4, id FROM done WHERE $4::text IS NOT NULL
    ON CONFLICT (client_group, userid)
    DO UPDATE SET jwk = EXCLUDED.jwk, command_id = EXCLUDED.command_id, registered_at = now()
)
INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body, lease_owner, lease_until, attempts)
SELECT $2, id, client_id, command_type, $3, $5::text,
       CASE WHEN $5::text IS NOT NULL THEN now() + make_interval(secs => $6) END,
       CASE WHEN $5::text IS NOT NULL THEN 1 ELSE 0 END
  FROM done
RETURNING id
"""

# A v7 uuid made in SQL (ids.py's layout): gen_random_uuid()'s random bits with the first 48
# replaced by the Unix time in ms and the version nibble turned from 4 into 7 (bits 52 and 53
# of the bytea); the variant bits are already 10.
UUID7_SQL = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""

# Expire due commands and queue their timeout callbacks; SKIP LOCKED so that several
# nodes sweep side by side without waiting for each other.
EXPIRE = """
WITH due AS (
    SELECT id, state AS was FROM hermod_command
     WHERE state IN ('pending', 'fetched') AND expires_at <= now()
     ORDER BY expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE hermod_command c SET state = 'expired'
      FROM due WHERE c.id = due.id
    RETURNING c.id, c.client_id, c.command_type, c.userid, c.nonce, due.was
)
INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body)
SELECT """ + UUID7_SQL + """, id, client_id, command_type,
       json_build_object('messageId', id, 'type', command_type, 'status', 'timeout',
                         'userid', userid, 'nonce', nonce, 'fetched', was = 'fetched')::text
  FROM expired
RETURNING id
"""

# Claim due callbacks under a lease. A lease that ran out (a node died mid-delivery)
# makes the callback due again: at-least-once.
# Extend the leases of the callbacks a node is delivering, so that the lease can be short
# (a dead node's callbacks are retried soon) and still outlast a slow delivery.
RENEW = """
UPDATE hermod_callback SET lease_until = now() + make_interval(secs => $3)
 WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND state = 'pending'
"""

CLAIM = """
UPDATE hermod_callback c
   SET lease_owner = $1, lease_until = now() + make_interval(secs => $2), attempts = c.attempts + 1
  FROM (SELECT id FROM hermod_callback
         WHERE state = 'pending' AND next_attempt_at <= now()
           AND (lease_until IS NULL OR lease_until < now())
         ORDER BY next_attempt_at
         LIMIT $3
           FOR UPDATE SKIP LOCKED) due
 WHERE c.id = due.id
RETURNING c.id, c.command_id, c.client_id, c.callback_type, c.body, c.attempts,
          extract(epoch FROM c.created_at)::float8 AS created
"""

MARK_DELIVERED = """
UPDATE hermod_callback
   SET state = 'delivered', delivered_at = now(), lease_owner = NULL, lease_until = NULL, last_error = NULL
 WHERE id = ANY($1::uuid[]) AND state = 'pending'
"""

MARK_DELIVERED_1_1 = """
UPDATE hermod_callback c
   SET state = 'delivered', delivered_at = now(), lease_owner = NULL, lease_until = NULL,
       last_error = NULL, last_http_status = r.status
  FROM unnest($1::uuid[], $2::int[]) AS r(id, status)
 WHERE c.id = r.id AND c.state = 'pending'
"""

# A failed attempt: back off, or give up once the callback is older than max-age.
# Only the lease holder may reschedule (a late node must not undo another's delivery).
MARK_RETRY = """
UPDATE hermod_callback c
   SET next_attempt_at = now() + make_interval(secs => r.delay),
       lease_owner = NULL, lease_until = NULL, last_error = r.error,
       state = CASE WHEN c.created_at + make_interval(secs => $4) < now() + make_interval(secs => r.delay)
                    THEN 'failed' ELSE 'pending' END
  FROM unnest($1::uuid[], $2::float8[], $3::text[]) AS r(id, delay, error)
 WHERE c.id = r.id AND c.state = 'pending' AND c.lease_owner = $5
RETURNING c.id, c.state
"""

MARK_RETRY_1_1 = MARK_RETRY.replace(
    "last_error = r.error,", "last_error = r.error, last_http_status = r.status,").replace(
    "unnest($1::uuid[], $2::float8[], $3::text[]) AS r(id, delay, error)",
    "unnest($1::uuid[], $2::float8[], $3::text[], $6::int[]) AS r(id, delay, error, status)")

RECORD_ATTEMPTS = """
INSERT INTO hermod_callback_attempt (callback_id, attempt, node, duration_ms, http_status, error)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::int[], $6::text[])
"""

def record_outcomes_sql(records_attempts: bool) -> str:
    """Every outcome of one delivery batch in one statement (one round trip, atomic):
    delivered ones marked, failed ones rescheduled or given up (only by the lease
    holder), and, since 1.1.0, one hermod_callback_attempt row per attempt.
    Parameters: $1 delivered ids, $2 their HTTP status, $3 retry ids, $4 delays,
    $5 errors, $6 retry HTTP status, $7 max-age, $8 node, then the attempt columns
    $9 callback id, $10 attempt, $11 duration ms, $12 HTTP status, $13 error (1.1.0 only).
    Returns (id, state) of the rescheduled ones ('failed' when given up)."""
    status_ok = ", last_http_status = r.status" if records_attempts else ""
    status_retry = " last_http_status = r.status," if records_attempts else ""
    attempts = """, attempts AS (
    INSERT INTO hermod_callback_attempt (callback_id, attempt, node, duration_ms, http_status, error)
    SELECT a.id, a.attempt, $8, a.duration_ms, a.status, a.error
      FROM unnest($9::uuid[], $10::int[], $11::int[], $12::int[], $13::text[])
           AS a(id, attempt, duration_ms, status, error)
)""" if records_attempts else ""
    return f"""
WITH delivered AS (
    UPDATE hermod_callback c
       SET state = 'delivered', delivered_at = now(), lease_owner = NULL, lease_until = NULL,
           last_error = NULL{status_ok}
      FROM unnest($1::uuid[], $2::int[]) AS r(id, status)
     WHERE c.id = r.id AND c.state = 'pending'
), retried AS (
    UPDATE hermod_callback c
       SET next_attempt_at = now() + make_interval(secs => r.delay),
           lease_owner = NULL, lease_until = NULL, last_error = r.error,{status_retry}
           state = CASE WHEN c.created_at + make_interval(secs => $7) < now() + make_interval(secs => r.delay)
                        THEN 'failed' ELSE 'pending' END
      FROM unnest($3::uuid[], $4::float8[], $5::text[], $6::int[]) AS r(id, delay, error, status)
     WHERE c.id = r.id AND c.state = 'pending' AND c.lease_owner = $8
    RETURNING c.id, c.state
){attempts}
SELECT id, state FROM retried
"""


CALLBACK_GAUGES = """
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'pending' AND attempts > 0 AND lease_until IS NULL) AS retrying,
       count(*) FILTER (WHERE state = 'failed') AS failed
  FROM hermod_callback WHERE state <> 'delivered'
"""


def hot_statements(records_attempts: bool) -> tuple[str, ...]:
    """What a worker runs under load (the request path's batched statements, expiry, callback
    delivery): prepared on every pool connection as it opens (db.create_pool)."""
    return (INSERT_COMMANDS, FETCH_COMMANDS, RESPONSE_CONTEXTS, ANSWERS, COMMAND_STATE, EXPIRE, CLAIM, RENEW,
            record_outcomes_sql(records_attempts))

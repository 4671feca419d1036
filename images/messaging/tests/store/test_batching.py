"""Batching on the hot path: the generic Batcher, the batched command statements against a
real database, and callback delivery batches with a failing or hanging target."""

import asyncio
import socket
import threading
import time
import uuid

import psycopg
import pytest

from helpers import ReceiverThread, make_home

from hermod_ref.store.batching import Batcher


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------ Batcher


def test_concurrent_submits_share_one_statement():
    calls = []

    async def many(items):
        calls.append(list(items))
        await asyncio.sleep(0.01)
        return [i * 2 for i in items]

    async def main():
        b = Batcher(many, max_batch=100, max_inflight=1)
        return b, await asyncio.gather(*(b.submit(i) for i in range(50)))

    b, results = run(main())
    assert results == [i * 2 for i in range(50)]
    assert calls == [list(range(50))] and b.batches == 1


def test_batches_respect_max_batch_and_max_inflight():
    inflight = peak = 0
    sizes = []

    async def many(items):
        nonlocal inflight, peak
        inflight += 1
        peak = max(peak, inflight)
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        inflight -= 1
        return items

    async def main():
        b = Batcher(many, max_batch=7, max_inflight=2)
        return await asyncio.gather(*(b.submit(i) for i in range(40)))

    assert run(main()) == list(range(40))
    assert max(sizes) <= 7 and sum(sizes) == 40 and peak == 2


def test_a_failing_batch_is_retried_row_by_row():
    """One bad row fails its own request only; the others get their results."""
    one_calls = []

    async def many(items):
        if "bad" in items:
            raise ValueError("constraint violated")
        return [i.upper() for i in items]

    async def one(item):
        one_calls.append(item)
        if item == "bad":
            raise ValueError("constraint violated")
        return item.upper()

    async def main():
        b = Batcher(many, one, max_batch=10, max_inflight=1)
        return await asyncio.gather(*(b.submit(i) for i in ["a", "bad", "c"]), return_exceptions=True)

    a, bad, c = run(main())
    assert (a, c) == ("A", "C") and isinstance(bad, ValueError)
    assert one_calls == ["a", "bad", "c"]


def test_without_fallback_every_caller_hears_of_the_failure():
    async def many(items):
        raise ConnectionError("database away")

    async def main():
        b = Batcher(many, None)
        return await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, ConnectionError) for r in run(main()))


def test_a_lone_request_is_not_held_back():
    async def many(items):
        return items

    async def main():
        b = Batcher(many, max_inflight=1)
        t = time.perf_counter()
        await b.submit(1)
        return time.perf_counter() - t

    assert run(main()) < 0.05


# ------------------------------------------------------------------ batched statements


@pytest.fixture
def commands(database):
    """(dsn, factory) -> queries.Commands on an asyncpg pool, inside a running loop."""
    return database("V1.1.0__base_version.sql")


async def _with_commands(dsn, body):
    import asyncpg

    from hermod_ref.store import queries

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        return await body(queries.Commands(pool, max_inflight=1), pool)
    finally:
        await pool.close()


def _row(reference, userid="alice", fmt="json", ctype="ping"):
    return (uuid.uuid4(), "idm", "g1", ctype, reference, "nonce-0123456789", userid, fmt, "{}", 60, 120)


def test_insert_batch_with_one_bad_row_inserts_the_others(commands):
    async def body(c, pool):
        rows = [_row("ref-aaaaaaaaaaaaaaaaaaaaaa"), _row("ref-bbbbbbbbbbbbbbbbbbbbbb"),
                _row("ref-aaaaaaaaaaaaaaaaaaaaaa")]  # duplicate reference: unique violation
        results = await asyncio.gather(*(c.insert(*r) for r in rows), return_exceptions=True)
        return results, await pool.fetchval("SELECT count(*) FROM hermod_command"), c.inserts.batches

    results, count, batches = run(_with_commands(commands, body))
    assert count == 2 and batches == 1
    assert not isinstance(results[0], Exception) and not isinstance(results[1], Exception)
    assert "unique" in type(results[2]).__name__.lower() or "Unique" in repr(results[2])


def test_two_fetches_of_one_reference_in_one_batch_hand_it_out_once(commands):
    async def body(c, pool):
        await c.insert(*_row("ref-cccccccccccccccccccccc"))
        got = await asyncio.gather(c.fetch("ref-cccccccccccccccccccccc"), c.fetch("ref-cccccccccccccccccccccc"),
                                   c.fetch("ref-unknown-unknown-unknown"))
        return got, c.fetches.batches

    (first, second, unknown), batches = run(_with_commands(commands, body))
    assert batches == 1 and unknown is None
    assert [first is None, second is None].count(True) == 1


def test_two_answers_to_one_command_in_one_batch_queue_one_callback(commands):
    async def body(c, pool):
        await c.insert(*_row("ref-dddddddddddddddddddddd"))
        row = await c.fetch("ref-dddddddddddddddddddddd")
        ids = [uuid.uuid4(), uuid.uuid4()]
        got = await asyncio.gather(*(c.answer(row["id"], i, '{"n":1}', None) for i in ids))
        return ids, got, await pool.fetchval("SELECT count(*) FROM hermod_callback")

    ids, got, callbacks = run(_with_commands(commands, body))
    assert callbacks == 1 and sorted(g is None for g in got) == [False, True]
    assert [g for g in got if g][0] in ids


def test_two_device_keys_for_one_user_in_one_batch_fall_back_to_row_by_row(commands):
    async def body(c, pool):
        refs = ["ref-eeeeeeeeeeeeeeeeeeeeee", "ref-ffffffffffffffffffffff"]
        for r in refs:
            await c.insert(*_row(r, fmt="jws", ctype="provision"))
        rows = [await c.fetch(r) for r in refs]
        got = await asyncio.gather(*(c.answer(r["id"], uuid.uuid4(), "{}", f'{{"k":{n}}}')
                                     for n, r in enumerate(rows)))
        keys = await pool.fetch("SELECT jwk FROM hermod_device_key")
        return got, [k["jwk"] for k in keys], await pool.fetchval("SELECT count(*) FROM hermod_callback")

    got, keys, callbacks = run(_with_commands(commands, body))
    assert all(g is not None for g in got) and callbacks == 2
    assert keys == ['{"k":1}']  # the later answer registered last


# ------------------------------------------------------------------ delivery batches


class Hanging:
    """A callback target that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _queue_callbacks(dsn, per_client):
    """Answered commands with pending callbacks, as if queued before the service started:
    the first claim takes them all, so they are delivered as one batch."""
    with psycopg.connect(dsn) as conn:
        for client in ("idm", "da"):
            conn.execute(f"""INSERT INTO hermod_command (id, client_id, client_group, command_type, reference,
                               nonce, userid, response_format, payload, timeout_seconds, expires_at, state)
                             SELECT gen_random_uuid(), '{client}', 'g1', 'ping', '{client}-' || md5(i::text),
                                    'nonce-0123456789', 'u', 'json', '{{}}', 60, now() + interval '1 hour',
                                    'answered'
                               FROM generate_series(1, {per_client}) i""")
        conn.execute("""INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body)
                        SELECT gen_random_uuid(), id, client_id, 'ping',
                               json_build_object('messageId', id, 'type', 'ping', 'status', 'answered')::text
                          FROM hermod_command""")


def _states(dsn):
    with psycopg.connect(dsn) as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            """SELECT client_id, count(*) FILTER (WHERE state = 'delivered'),
                      count(*) FILTER (WHERE state = 'pending' AND attempts >= 1 AND last_error IS NOT NULL),
                      min(attempts)
                 FROM hermod_callback GROUP BY client_id""")}


@pytest.mark.parametrize("failure", ["refused", "hanging"])
def test_batch_with_one_failing_target_delivers_the_others_and_retries_it(database, services, tmp_path, failure):
    receiver = ReceiverThread(basic_auth="cbuser:cb-secret-pw")
    hanging = Hanging() if failure == "hanging" else None
    try:
        dsn = database("V1.1.0__base_version.sql")
        _queue_callbacks(dsn, 20)
        from helpers import read_conf

        home = make_home(tmp_path / "home", dsn, receiver.url,
                         extra={"hermod.callback.timeout": 2, "hermod.callback.lease": 4})
        conf = read_conf(home)
        dead = hanging.port if hanging else __import__("pgtools").free_port()
        conf["allowed-clients"][1]["callback-url"] = f"http://127.0.0.1:{dead}"  # da
        (home / "config" / "hermod-conf.yml").write_text(__import__("yaml").safe_dump(conf, sort_keys=False))
        t0 = time.monotonic()
        services(home)
        receiver.wait_for(lambda c: len(c) >= 20, timeout=15)
        # idm's callbacks are delivered and recorded while da's are still failing or hanging
        end = time.monotonic() + 10
        while _states(dsn)["idm"][0] < 20 and time.monotonic() < end:
            time.sleep(0.05)
        recorded = time.monotonic() - t0
        assert _states(dsn)["idm"][0] == 20
        if hanging:
            assert recorded < 2 + 5, "a hanging target must not hold up the others' outcomes"
        end = time.monotonic() + 15
        while _states(dsn)["da"][1] < 20 and time.monotonic() < end:
            time.sleep(0.1)
        delivered, retrying, attempts = _states(dsn)["da"]
        assert delivered == 0 and retrying == 20 and attempts >= 1
        assert {c["body"]["messageId"] for c in receiver.callbacks}.__len__() == 20
        assert receiver.receiver.duplicates == 0
        with psycopg.connect(dsn) as conn:
            errors = dict(conn.execute("""SELECT c.client_id, min(a.error) FROM hermod_callback_attempt a
                                            JOIN hermod_callback c ON c.id = a.callback_id
                                           GROUP BY c.client_id""").fetchall())
        assert errors["idm"] is None
        assert errors["da"] == ("timeout" if hanging else "connection: ConnectionRefusedError")
    finally:
        receiver.stop()
        if hanging:
            hanging.close()


def test_answers_beyond_the_delivery_slots_are_queued_for_the_claim_loop(database, receiver, services, tmp_path):
    """With one delivery slot most answers cannot be delivered by the answering worker at
    once: they are queued unclaimed and the claim loop delivers them; none lost, none twice."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, receiver.url, extra={"hermod.callback.concurrency": 1})
    proc = services(home)

    def lifecycle(i):
        nonce = f"nonce-{i:012d}"
        r = proc.command("ping", {"pingCommand": {"nonce": nonce, "userid": "alice", "responseformat": "json"}})
        assert r.status_code == 202, r.text
        url = r.json()["deviceUrl"]
        assert requests.get(url, timeout=5).status_code == 200
        r2 = requests.post(url + "/response", json={"nonce": nonce, "response": {"i": i}}, timeout=5)
        assert r2.status_code == 202, r2.text
        return r.json()["messageId"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lifecycle, range(40)))
    cbs = receiver.wait_for(lambda c: len(c) >= 40, timeout=20)
    assert {c["body"]["messageId"] for c in cbs} == ids and receiver.receiver.duplicates == 0
    with psycopg.connect(dsn) as conn:
        end = time.monotonic() + 5
        while conn.execute("SELECT count(*) FROM hermod_callback WHERE state = 'delivered'").fetchone()[0] < 40:
            assert time.monotonic() < end
            time.sleep(0.05)
        attempts = conn.execute("SELECT count(*), max(attempt) FROM hermod_callback_attempt").fetchone()
    assert attempts == (40, 1)
